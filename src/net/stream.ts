/**
 * The stream backend: Ethernet frames over a TCP or Unix stream socket, each frame
 * preceded by its length as a 32-bit big-endian number, the framing QEMU's
 * `-netdev socket,listen=|connect=` and `-netdev stream` use, so a tsemu segment and
 * a QEMU guest can share a link. As a server it accepts one peer at a time (a
 * second is refused while one is connected; a new one may come when it leaves); as
 * a client it connects once when opened (an error if that fails) and, when the
 * peer leaves, frames are dropped until close. A length above 65,536 means the
 * peer does not speak this framing: it is disconnected. When the peer reads too
 * slowly (over 1 MiB unsent), frames are dropped, as on a congested wire.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { MIN_FRAME, type FrameBackend, type FrameHandler } from './backend.js';

const MAX_STREAM_FRAME = 65536;
const MAX_UNSENT = 1 << 20;

export type StreamAddress = { kind: 'inet'; host: string; port: number } | { kind: 'unix'; path: string };

function describe(a: StreamAddress): string {
  return a.kind === 'inet' ? `${a.host}:${a.port}` : a.path;
}

export class StreamBackend implements FrameBackend {
  private handler: FrameHandler = () => {};
  private peer: Socket | null = null;
  private closed = false;

  private constructor(readonly name: string, private readonly server: Server | null) {}

  /** Listens on the address; `listening` is where (a port 0 resolved). */
  static async listen(address: StreamAddress): Promise<StreamBackend> {
    const server = createServer();
    const backend = new StreamBackend(`stream server ${describe(address)}`, server);
    server.on('connection', (socket) => {
      if (backend.peer || backend.closed) return void socket.destroy();
      backend.attach(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new Error(`stream: cannot listen on ${describe(address)}: ${err.message}`)));
      if (address.kind === 'inet') server.listen(address.port, address.host || undefined, resolve);
      else server.listen(address.path, resolve);
    });
    return backend;
  }

  static async connect(address: StreamAddress): Promise<StreamBackend> {
    const socket = address.kind === 'inet' ? connect(address.port, address.host) : connect(address.path);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', (err) => reject(new Error(`stream: cannot connect to ${describe(address)}: ${err.message}`)));
    });
    const backend = new StreamBackend(`stream client ${describe(address)}`, null);
    backend.attach(socket);
    return backend;
  }

  /** The TCP port a server listens on (for listen port 0). */
  get port(): number {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : 0;
  }

  private attach(socket: Socket): void {
    this.peer = socket;
    socket.setNoDelay(true);
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      let at = 0;
      while (pending.length - at >= 4) {
        const length = pending.readUInt32BE(at);
        if (length > MAX_STREAM_FRAME) return void socket.destroy();
        if (pending.length - at - 4 < length) break;
        const frame = pending.subarray(at + 4, at + 4 + length);
        at += 4 + length;
        if (length >= MIN_FRAME) this.handler(new Uint8Array(frame));
      }
      pending = pending.subarray(at);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      if (this.peer === socket) this.peer = null;
    });
  }

  onFrame(handler: FrameHandler): void {
    this.handler = handler;
  }

  send(frame: Uint8Array): void {
    const peer = this.peer;
    if (!peer || this.closed || frame.length < MIN_FRAME || peer.writableLength > MAX_UNSENT) return;
    const out = Buffer.allocUnsafe(4 + frame.length);
    out.writeUInt32BE(frame.length, 0);
    out.set(frame, 4);
    peer.write(out);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.peer?.destroy();
    if (this.server) await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }
}
