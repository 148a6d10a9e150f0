/**
 * ICMP echo from the guest to hosts other than the router, through one unprivileged
 * ICMP socket (socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP), reached with koffi). Linux
 * allows it to processes whose group is in net.ipv4.ping_group_range (and to root).
 * The kernel gives the socket one echo identifier of its own and matches replies by
 * it, so a request goes out with the guest's sequence and data, and the reply is
 * matched back to its guest by (replying address, sequence): the guest's address and
 * identifier are restored and the reply leaves through the stack from the address
 * the guest pinged. Pending requests are forgotten after 30 s (swept when new ones
 * are sent, at most 4096 kept).
 *
 * The socket opens at the first request. If it cannot be opened (no permission),
 * echo requests to other hosts are dropped, as libslirp does, and that is said once
 * as a process warning. Reading uses an FdWatch (non-blocking recvfrom until EAGAIN).
 */
import type * as Koffi from 'koffi';
import { libc } from '../../util/libc.js';
import { FdWatch } from '../fd-watch.js';
import { OutPacket, PROTO_ICMP } from './packet.js';

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0x800;
const SOCK_CLOEXEC = 0x80000;
const IPPROTO_ICMP = 1;
const EAGAIN = 11;
const EINTR = 4;
const ECHO_REPLY = 0;
const PENDING_MS = 30_000;
const MAX_PENDING = 4096;
/** Replies read per wake-up before polling again. */
const READ_BATCH = 64;

interface SocketCalls {
  koffi: typeof Koffi;
  socket: (domain: number, type: number, protocol: number) => number;
  sendto: (fd: number, buf: Uint8Array, len: number, flags: number, addr: Buffer, addrLen: number) => number;
  recvfrom: (fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrLen: Buffer) => number;
  close: (fd: number) => number;
  strerror: (errnum: number) => string;
}

let calls: SocketCalls | null = null;

function load(): SocketCalls {
  if (calls) return calls;
  const { koffi, lib, describe } = libc();
  calls = {
    koffi,
    socket: lib.func('int socket(int domain, int type, int protocol)') as SocketCalls['socket'],
    sendto: lib.func('long sendto(int fd, const void *buf, unsigned long len, int flags, const void *addr, unsigned int addrlen)') as SocketCalls['sendto'],
    recvfrom: lib.func('long recvfrom(int fd, void *buf, unsigned long len, int flags, void *addr, void *addrlen)') as SocketCalls['recvfrom'],
    close: lib.func('int close(int fd)') as SocketCalls['close'],
    strerror: describe,
  };
  return calls;
}

/** A struct sockaddr_in for an IPv4 address (port 0). */
function sockaddr(addr: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt16LE(AF_INET, 0);
  b.writeUInt32BE(addr >>> 0, 4);
  return b;
}

interface Pending {
  guest: number;
  guestId: number;
  /** The address the guest pinged (the reply's source). */
  guestDst: number;
  sentAt: number;
}

export class IcmpEcho {
  private fd = -1;
  private unavailable = false;
  private closed = false;
  private watch: FdWatch | null = null;
  private readonly pending = new Map<string, Pending>();
  private readonly readBuffer = Buffer.alloc(65536);
  private readonly fromAddr = Buffer.alloc(16);
  private readonly fromLength = Buffer.alloc(4);

  /** `emit` sends a finished packet to the guest. */
  constructor(private readonly emit: (packet: OutPacket) => void) {}

  /**
   * Sends the guest's echo request `icmp` (header and data, checksum verified) to
   * `hostAddr`; its reply reaches `guest` from `guestDst` (usually the same address).
   */
  send(guest: number, guestDst: number, hostAddr: number, icmp: Uint8Array): void {
    if (this.closed || !this.open()) return;
    const now = Date.now();
    for (const [key, p] of this.pending) {
      if (now - p.sentAt < PENDING_MS && this.pending.size < MAX_PENDING) break;
      this.pending.delete(key);
    }
    const view = new DataView(icmp.buffer, icmp.byteOffset, icmp.byteLength);
    const key = `${hostAddr >>> 0}:${view.getUint16(6)}`;
    this.pending.delete(key);
    this.pending.set(key, { guest, guestId: view.getUint16(4), guestDst, sentAt: now });
    // The kernel sets the identifier and the checksum; a refused send is a lost ping.
    load().sendto(this.fd, icmp, icmp.length, 0, sockaddr(hostAddr), 16);
  }

  private open(): boolean {
    if (this.fd >= 0) return true;
    if (this.unavailable) return false;
    const c = load();
    const fd = c.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP);
    if (fd < 0) return this.giveUp(c.strerror(c.koffi.errno()));
    try {
      this.watch = FdWatch.start(fd, 'ICMP echo', () => this.drain(), (err) => this.fail(err));
    } catch (err) {
      c.close(fd);
      return this.giveUp((err as Error).message);
    }
    this.fd = fd;
    return true;
  }

  private giveUp(reason: string): false {
    this.unavailable = true;
    process.emitWarning(`user network: no ICMP socket (${reason}; see net.ipv4.ping_group_range): echo requests to hosts other than the router are dropped`);
    return false;
  }

  private drain(): void {
    const c = load();
    for (let n = 0; n < READ_BATCH && !this.closed; n++) {
      this.fromLength.writeUInt32LE(16, 0);
      const length = c.recvfrom(this.fd, this.readBuffer, this.readBuffer.length, 0, this.fromAddr, this.fromLength);
      if (length < 0) {
        const errno = c.koffi.errno();
        if (errno === EAGAIN || errno === EINTR) return;
        return this.fail(new Error(c.strerror(errno)));
      }
      if (length >= 8 && this.readBuffer[0] === ECHO_REPLY) this.reply(this.fromAddr.readUInt32BE(4), this.readBuffer.subarray(0, length));
    }
  }

  private reply(from: number, icmp: Buffer): void {
    const key = `${from}:${icmp.readUInt16BE(6)}`;
    const p = this.pending.get(key);
    if (!p) return;
    this.pending.delete(key);
    const out = new OutPacket(PROTO_ICMP, p.guestDst, p.guest, icmp.length);
    out.frame.set(icmp, out.l4);
    out.view.setUint16(out.l4 + 4, p.guestId);
    this.emit(out);
  }

  private fail(err: Error): void {
    process.emitWarning(`user network: ICMP socket: ${err.message}; echo to other hosts stops`);
    this.unavailable = true;
    void this.close();
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pending.clear();
    await this.watch?.stop();
    if (this.fd >= 0) load().close(this.fd);
    this.fd = -1;
  }
}
