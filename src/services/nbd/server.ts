/**
 * The NBD server: listens on TCP or a Unix socket and serves named exports to
 * clients, qemu-nbd style.
 *
 * Each accepted connection is a client: it negotiates (server-handshake.ts, within
 * HANDSHAKE_LIMIT_MS, else it is dropped) and then runs its transmission phase
 * (server-session.ts). At most `shared` clients are served at once; later ones wait,
 * connected but not greeted, until a slot frees (qemu-nbd stops accepting instead;
 * to the client the two look the same). A client that breaks the protocol gets one
 * log line and is dropped; the others go on.
 *
 * Lifetime: with `persistent` the server runs until close(); without it the server
 * finishes once a client has come and the number of clients is back to zero (the
 * first client's disconnect, with the default of one client at a time), as
 * qemu-nbd does without --persistent. `finished` resolves then; the caller closes
 * the exported images.
 */
import net from 'node:net';
import { rm } from 'node:fs/promises';
import { SocketReader } from '../../block/nbd/reader.js';
import type { NbdExport } from './export.js';
import { serverHandshake } from './server-handshake.js';
import { ServerSession } from './server-session.js';
import { socketErrorText } from '../../block/nbd/protocol.js';

export interface NbdServerOptions {
  exports: readonly NbdExport[];
  /** TCP address to bind (with `port`), or... */
  bind?: string;
  port?: number;
  /** ...a Unix socket path to listen on instead. */
  socketPath?: string;
  /** Clients served at once (default 1). */
  shared?: number;
  /** Keep serving after the last client leaves. */
  persistent?: boolean;
  /** Where log lines go (one line each, no newline). */
  log?: (line: string) => void;
}

export const NBD_DEFAULT_PORT = 10809;
const HANDSHAKE_LIMIT_MS = 10_000;

export class NbdServer {
  private active = 0;
  private served = 0;
  private readonly waiting: net.Socket[] = [];
  private readonly sockets = new Set<net.Socket>();
  private readonly sessions = new Set<Promise<void>>();
  private readonly exports: ReadonlyMap<string, NbdExport>;
  private readonly log: (line: string) => void;
  private closing: Promise<void> | null = null;
  private finish!: () => void;
  /** Resolves when the server has stopped (not persistent: the last client left; or close()). */
  readonly finished: Promise<void>;

  private constructor(private readonly server: net.Server, private readonly opts: NbdServerOptions) {
    this.exports = new Map(opts.exports.map((e) => [e.name, e]));
    this.log = opts.log ?? (() => {});
    this.finished = new Promise((resolve) => (this.finish = resolve));
    server.on('connection', (socket) => this.accept(socket));
  }

  static async listen(opts: NbdServerOptions): Promise<NbdServer> {
    const shared = opts.shared ?? 1;
    if (!Number.isInteger(shared) || shared < 1) throw new Error(`Invalid shared device number '${opts.shared}'`);
    const server = net.createServer({ noDelay: true, pauseOnConnect: true });
    const nbd = new NbdServer(server, opts);
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => reject(new Error(`Failed to bind socket: ${socketErrorText(e)}`)));
      if (opts.socketPath !== undefined) server.listen(opts.socketPath, resolve);
      else server.listen(opts.port ?? NBD_DEFAULT_PORT, opts.bind ?? '0.0.0.0', resolve);
    });
    server.on('error', (e) => nbd.log(`listening socket: ${e.message}`));
    return nbd;
  }

  /** The bound TCP port (useful with port 0), or null on a Unix socket. */
  get port(): number | null {
    const addr = this.server.address();
    return addr && typeof addr === 'object' ? addr.port : null;
  }

  /** Stops listening, drops every client, waits for their requests in flight and resolves `finished`. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const s of this.sockets) s.destroy();
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
      // Requests already running finish before the images can be closed.
      await Promise.all(this.sessions);
      if (this.opts.socketPath !== undefined) await rm(this.opts.socketPath, { force: true });
      this.finish();
    })();
    return this.closing;
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    if (this.active < (this.opts.shared ?? 1)) this.start(socket);
    else this.waiting.push(socket);
  }

  private start(socket: net.Socket): void {
    const session = this.serve(socket);
    this.sessions.add(session);
    void session.finally(() => this.sessions.delete(session));
  }

  private async serve(socket: net.Socket): Promise<void> {
    this.active++;
    const peer = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix socket client';
    try {
      if (socket.destroyed) return;
      const reader = new SocketReader(socket);
      socket.resume();
      const limit = setTimeout(() => {
        this.log(`client ${peer} did not finish negotiation in ${HANDSHAKE_LIMIT_MS / 1000} s; dropping it`);
        socket.destroy();
      }, HANDSHAKE_LIMIT_MS);
      let negotiated;
      try {
        negotiated = await serverHandshake(socket, reader, this.exports, (line) => this.log(`client ${peer}: ${line}`));
      } finally {
        clearTimeout(limit);
      }
      if (negotiated) await new ServerSession(socket, reader, negotiated, (line) => this.log(`client ${peer}: ${line}`)).run();
    } catch (e) {
      const err = e as Error;
      if (err.name !== 'NbdClosedError' || !(e as { atBoundary?: boolean }).atBoundary) {
        this.log(`client ${peer}: ${err.message}; dropping the client`);
      }
    } finally {
      socket.end(() => socket.destroy());
      this.active--;
      this.served++;
      this.next();
    }
  }

  private next(): void {
    if (this.closing) return;
    const socket = this.waiting.shift();
    if (socket) {
      this.start(socket);
      return;
    }
    if (!this.opts.persistent && this.active === 0 && this.served > 0) void this.close();
  }
}
