/**
 * TCP NAT: the table of guest TCP connections and the host forwards' listeners.
 * A guest SYN to an address the stack lets it reach opens the host end the stack
 * chooses (a socket to the matching host address, or a guest forward's target; the
 * connection answers the guest once the host end is up);
 * a segment for no connection gets a RST (RFC 793's rules), so guests fail fast. A
 * host forward listens on a host address; each accepted host connection becomes a
 * connection into the guest from the user network's host address and a port of
 * the ephemeral range. At most 4096 connections at once (SYNs beyond are reset).
 * The connection a segment belongs to is looked up by its addresses and ports; the
 * last one found is checked first (a bulk transfer's segments come in runs).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { HostForward } from '../spec.js';
import { addressKey, hostPortText, type IpAddress } from './ip-address.js';
import { l4ChecksumOk, PROTO_TCP, type InPacket } from './packet.js';
import { ACK, FIN, mssFor, readSynOptions, RST, SYN, TcpConnection, tcpSegment, type TcpOutput } from './tcp-connection.js';

const MAX_CONNECTIONS = 4096;
const EPHEMERAL_FIRST = 49152;
/**
 * The one read buffer of every host socket connectHost() opens (net's onread): a
 * read is handed on as a 'data' event of a view into it, which TcpConnection copies
 * into its send queue at once, so no read allocates a buffer of its own.
 */
const hostReadBuffer = Buffer.allocUnsafe(64 << 10);

/** Opens a host TCP connection for a guest connection (the guest hears SYN-ACK once it connects). */
export function connectHost(host: string, port: number): Duplex {
  const socket: Socket = connect({
    host, port, allowHalfOpen: true,
    onread: { buffer: hostReadBuffer, callback: (n: number, buf: Uint8Array) => socket.emit('data', buf.subarray(0, n)) },
  });
  socket.setNoDelay(true);
  return socket;
}

export class TcpNat {
  private readonly connections = new Map<string, TcpConnection>();
  private nextPort = EPHEMERAL_FIRST;
  /** The connection the last segment belonged to. */
  private last: TcpConnection | null = null;

  constructor(private readonly out: TcpOutput) {}

  private key(guestAddr: IpAddress, guestPort: number, peerAddr: IpAddress, peerPort: number): string {
    return `${addressKey(guestAddr)}:${guestPort}>${addressKey(peerAddr)}:${peerPort}`;
  }

  get size(): number {
    return this.connections.size;
  }

  /**
   * A TCP segment from the guest. `openHost` opens the host end for a new
   * connection to dst:port (a socket connecting, or a command), or returns null
   * when the guest may not reach it.
   */
  input(p: InPacket, openHost: (dst: IpAddress, port: number) => Duplex | null): void {
    if (p.l4Length < 20 || !l4ChecksumOk(p, PROTO_TCP)) return;
    const v = p.view;
    const t = p.l4;
    const headerLength = (v.getUint8(t + 12) >> 4) * 4;
    if (headerLength < 20 || headerLength > p.l4Length) return;
    const guestPort = v.getUint16(t);
    const peerPort = v.getUint16(t + 2);
    const flags = v.getUint8(t + 13);
    const last = this.last;
    if (last !== null && last.state !== 'closed' && last.is(p.src, guestPort, p.dst, peerPort)) return last.input(p, headerLength);
    const key = this.key(p.src, guestPort, p.dst, peerPort);
    const existing = this.connections.get(key);
    if (existing) {
      this.last = existing;
      return existing.input(p, headerLength);
    }
    const socket = (flags & (SYN | ACK | RST | FIN)) === SYN && this.connections.size < MAX_CONNECTIONS ? openHost(p.dst, peerPort) : null;
    if (socket === null) return this.refuse(p, headerLength);
    const syn = { seq: v.getUint32(t + 4), options: readSynOptions(v, t, headerLength, mssFor(p.src)) };
    this.connections.set(key, new TcpConnection(this.out, p.src, guestPort, p.dst, peerPort, socket, () => this.connections.delete(key), syn));
  }

  /** Answers a segment that belongs to no connection with a RST (never a RST to a RST). */
  private refuse(p: InPacket, headerLength: number): void {
    const v = p.view;
    const t = p.l4;
    const flags = v.getUint8(t + 13);
    if (flags & RST) return;
    const seq = v.getUint32(t + 4);
    const length = p.l4Length - headerLength + (flags & SYN ? 1 : 0) + (flags & FIN ? 1 : 0);
    const segment = flags & ACK
      ? tcpSegment(p.dst, v.getUint16(t + 2), p.src, v.getUint16(t), v.getUint32(t + 8), 0, RST, 0)
      : tcpSegment(p.dst, v.getUint16(t + 2), p.src, v.getUint16(t), 0, seq + length, RST | ACK, 0);
    this.out.emit(segment);
  }

  private ephemeralPort(guestAddr: IpAddress, guestPort: number, peerAddr: IpAddress): number {
    for (let n = 0; n < 65536 - EPHEMERAL_FIRST; n++) {
      const port = this.nextPort;
      this.nextPort = port === 65535 ? EPHEMERAL_FIRST : port + 1;
      if (!this.connections.has(this.key(guestAddr, guestPort, peerAddr, port))) return port;
    }
    return 0;
  }

  /**
   * Starts a host forward: listens on its host address and port; each host connection
   * is connected into the guest at guestAddrOf() (null: no guest yet, the host
   * connection is closed) from `peerAddr`.
   */
  async listen(fwd: HostForward, peerAddr: IpAddress, guestAddrOf: () => IpAddress | null): Promise<Server> {
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
      const guestAddr = guestAddrOf();
      const port = guestAddr === null || this.connections.size >= MAX_CONNECTIONS ? 0 : this.ephemeralPort(guestAddr, fwd.guestPort, peerAddr);
      if (guestAddr === null || port === 0) return void socket.destroy();
      const key = this.key(guestAddr, fwd.guestPort, peerAddr, port);
      socket.on('error', () => {});
      socket.setNoDelay(true);
      this.connections.set(key, new TcpConnection(this.out, guestAddr, fwd.guestPort, peerAddr, port, socket, () => this.connections.delete(key)));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new Error(`hostfwd: cannot listen on ${hostPortText(fwd.hostAddr, fwd.hostPort)}: ${err.message}`)));
      server.listen(fwd.hostPort, fwd.hostAddr || undefined, () => resolve());
    });
    return server;
  }

  /** Resets every connection. */
  close(): void {
    for (const c of [...this.connections.values()]) c.reset();
  }
}
