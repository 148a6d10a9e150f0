/**
 * The dgram backend: each Ethernet frame is one UDP datagram, with no header, the
 * wire of QEMU's `-netdev socket,udp=REMOTE,localaddr=LOCAL` and `-netdev dgram`.
 * Frames are sent to the remote address; datagrams arriving at the local address,
 * from anyone, are frames for the segment (short ones are dropped).
 */
import { createSocket, type Socket } from 'node:dgram';
import { MAX_FRAME, MIN_FRAME, type FrameBackend, type FrameHandler } from './backend.js';

export interface UdpAddress {
  host: string;
  port: number;
}

export class DgramBackend implements FrameBackend {
  readonly name: string;
  private handler: FrameHandler = () => {};
  private closed = false;

  private constructor(private readonly socket: Socket, private readonly remote: UdpAddress) {
    this.name = `dgram ${remote.host}:${remote.port}`;
    socket.on('message', (msg) => {
      if (msg.length >= MIN_FRAME) this.handler(new Uint8Array(msg));
    });
    socket.on('error', () => {});
  }

  static async open(local: UdpAddress, remote: UdpAddress): Promise<DgramBackend> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (err) => reject(new Error(`dgram: cannot bind ${local.host}:${local.port}: ${err.message}`)));
      socket.bind(local.port, local.host || undefined, resolve);
    });
    return new DgramBackend(socket, remote);
  }

  /** The local UDP port (for a local port 0). */
  get port(): number {
    return this.socket.address().port;
  }

  onFrame(handler: FrameHandler): void {
    this.handler = handler;
  }

  send(frame: Uint8Array): void {
    if (this.closed || frame.length < MIN_FRAME || frame.length > MAX_FRAME) return;
    this.socket.send(frame, this.remote.port, this.remote.host);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}
