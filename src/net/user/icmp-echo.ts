/**
 * ICMP echo from the guest to hosts other than the router, through one unprivileged
 * ICMP socket per family (socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP), or AF_INET6 and
 * IPPROTO_ICMPV6 for ICMPv6 echo; reached with koffi). Linux allows them to
 * processes whose group is in net.ipv4.ping_group_range (and to root), for both families.
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
import { addressKey, type IpAddress } from './ip-address.js';
import { OutPacket, PROTO_ICMP, PROTO_ICMPV6 } from './packet.js';

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0x800;
const SOCK_CLOEXEC = 0x80000;
const IPPROTO_ICMP = 1;
const IPPROTO_ICMPV6 = 58;
const EAGAIN = 11;
const EINTR = 4;
const SOCKADDR_IN6 = 28;
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

/** A struct sockaddr_in or sockaddr_in6 for an address (port 0). */
function sockaddr(addr: IpAddress): Buffer {
  if (typeof addr !== 'number') {
    const b = Buffer.alloc(SOCKADDR_IN6);
    b.writeUInt16LE(AF_INET6, 0);
    b.set(addr, 8);
    return b;
  }
  const b = Buffer.alloc(16);
  b.writeUInt16LE(AF_INET, 0);
  b.writeUInt32BE(addr >>> 0, 4);
  return b;
}

/** Each family's protocol name, socket domain and protocol, and echo reply type. */
const FAMILIES = {
  4: { name: 'ICMP', domain: AF_INET, protocol: IPPROTO_ICMP, ipProtocol: PROTO_ICMP, replyType: 0 },
  6: { name: 'ICMPv6', domain: AF_INET6, protocol: IPPROTO_ICMPV6, ipProtocol: PROTO_ICMPV6, replyType: 129 },
} as const;

interface Pending {
  guest: IpAddress;
  guestId: number;
  /** The address the guest pinged (the reply's source). */
  guestDst: IpAddress;
  sentAt: number;
}

export class IcmpEcho {
  private fd = -1;
  private unavailable = false;
  private closed = false;
  private watch: FdWatch | null = null;
  private readonly pending = new Map<string, Pending>();
  private readonly readBuffer = Buffer.alloc(65536);
  private readonly fromAddr = Buffer.alloc(SOCKADDR_IN6);
  private readonly fromLength = Buffer.alloc(4);
  private readonly family: (typeof FAMILIES)[4 | 6];

  /** Echo for IPv4 or IPv6 guests' requests; `emit` sends a finished packet to the guest. */
  constructor(private readonly version: 4 | 6, private readonly emit: (packet: OutPacket) => void) {
    this.family = FAMILIES[version];
  }

  /**
   * Sends the guest's echo request `icmp` (header and data, checksum verified) to
   * `hostAddr`; its reply reaches `guest` from `guestDst` (usually the same address).
   */
  send(guest: IpAddress, guestDst: IpAddress, hostAddr: IpAddress, icmp: Uint8Array): void {
    if (this.closed || !this.open()) return;
    const now = Date.now();
    for (const [key, p] of this.pending) {
      if (now - p.sentAt < PENDING_MS && this.pending.size < MAX_PENDING) break;
      this.pending.delete(key);
    }
    const view = new DataView(icmp.buffer, icmp.byteOffset, icmp.byteLength);
    const key = `${addressKey(hostAddr)}:${view.getUint16(6)}`;
    this.pending.delete(key);
    this.pending.set(key, { guest, guestId: view.getUint16(4), guestDst, sentAt: now });
    // The kernel sets the identifier and the checksum; a refused send is a lost ping.
    const to = sockaddr(hostAddr);
    load().sendto(this.fd, icmp, icmp.length, 0, to, to.length);
  }

  private open(): boolean {
    if (this.fd >= 0) return true;
    if (this.unavailable) return false;
    const c = load();
    const fd = c.socket(this.family.domain, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, this.family.protocol);
    if (fd < 0) return this.giveUp(c.strerror(c.koffi.errno()));
    try {
      this.watch = FdWatch.start(fd, `${this.family.name} echo`, () => this.drain(), (err) => this.fail(err));
    } catch (err) {
      c.close(fd);
      return this.giveUp((err as Error).message);
    }
    this.fd = fd;
    return true;
  }

  private giveUp(reason: string): false {
    this.unavailable = true;
    // net.ipv4.ping_group_range governs ICMPv6 ping sockets too.
    process.emitWarning(`user network: no ${this.family.name} socket (${reason}; see net.ipv4.ping_group_range): echo requests to hosts other than the router are dropped`);
    return false;
  }

  private drain(): void {
    const c = load();
    for (let n = 0; n < READ_BATCH && !this.closed; n++) {
      this.fromLength.writeUInt32LE(SOCKADDR_IN6, 0);
      const length = c.recvfrom(this.fd, this.readBuffer, this.readBuffer.length, 0, this.fromAddr, this.fromLength);
      if (length < 0) {
        const errno = c.koffi.errno();
        if (errno === EAGAIN || errno === EINTR) return;
        return this.fail(new Error(c.strerror(errno)));
      }
      if (length < 8 || this.readBuffer[0] !== this.family.replyType) continue;
      const from = this.version === 4 ? this.fromAddr.readUInt32BE(4) : new Uint8Array(this.fromAddr.subarray(8, 24));
      this.reply(from, this.readBuffer.subarray(0, length));
    }
  }

  private reply(from: IpAddress, icmp: Buffer): void {
    const key = `${addressKey(from)}:${icmp.readUInt16BE(6)}`;
    const p = this.pending.get(key);
    if (!p) return;
    this.pending.delete(key);
    const out = new OutPacket(this.family.ipProtocol, p.guestDst, p.guest, icmp.length);
    out.frame.set(icmp, out.l4);
    out.view.setUint16(out.l4 + 4, p.guestId);
    this.emit(out);
  }

  private fail(err: Error): void {
    process.emitWarning(`user network: ${this.family.name} socket: ${err.message}; echo to other hosts stops`);
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
