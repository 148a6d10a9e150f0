/**
 * The tap backend: a Linux TAP interface opened through /dev/net/tun (ioctl
 * TUNSETIFF with IFF_TAP | IFF_NO_PI, so each read and write is exactly one
 * Ethernet frame with no extra header). Needs CAP_NET_ADMIN, as QEMU's tap does;
 * without it open() fails with an error saying so. The interface is left down and
 * unconfigured (script=no): whoever runs tsemu sets it up, moves it into a
 * namespace, bridges it.
 *
 * vnet_hdr=on (QEMU's option) adds IFF_VNET_HDR: every read and write then starts
 * with a virtio-net header (vnet-hdr.ts), 10 bytes or, after
 * setVnetHeaderLength(12), 12. The header is split off frames read (handed to the
 * handler as its second argument unless it is empty, so backends that do not know
 * headers get plain frames) and added to frames sent (the sender's, or an
 * empty one). Offloads stay off until setOffload() (TUNSETOFFLOAD) turns them on:
 * until then the kernel completes checksums and segments before a frame reaches
 * the tap, so its headers never ask for work. open() fails with a clear error when
 * the kernel does not offer IFF_VNET_HDR (TUNGETFEATURES). Without vnet_hdr, a frame
 * sent with a header that asks for work is dropped: the kernel could not do it.
 *
 * Reading: the descriptor is non-blocking and an FdWatch (fd-watch.ts) polls it
 * off the main thread; when it is readable, the main thread reads frames until
 * EAGAIN (at most a batch, then polls again) and hands each to the handler.
 * close() stops the watch, then closes the descriptor. Writes are synchronous (a tap write
 * never blocks; a frame the kernel refuses is dropped, as on a wire). Reads and
 * writes call read(2) and write(2) through koffi: measured per 1514-byte frame, about
 * 0.3 µs each against 0.7 to 1.6 µs for fs.readSync and fs.writeSync, whose
 * EAGAIN is moreover an exception (8 to 11 µs).
 */
import { closeSync, constants, openSync } from 'node:fs';
import type * as Koffi from 'koffi';
import { libc } from '../util/libc.js';
import { MAX_FRAME, MIN_FRAME, type FrameBackend, type FrameHandler } from './backend.js';
import { FdWatch } from './fd-watch.js';
import { copyFrame } from './frame-slab.js';
import { isGsoVnetHeader, isPlainVnetHeader, MAX_GSO_FRAME, vnetHeaderAsksForWork, VNET_HDR_LEN, VNET_HDR_LEN_MRG } from './vnet-hdr.js';

const TUNSETIFF = 0x400454ca;
const TUNGETFEATURES = 0x800454cf;
const TUNSETOFFLOAD = 0x400454d0;
const TUNSETVNETHDRSZ = 0x400454d8;
const EAGAIN = 11;
const EINTR = 4;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const IFF_VNET_HDR = 0x4000;
const IFREQ_SIZE = 40;
const IFNAMSIZ = 16;
/** Frames read per wake-up before polling again, so one busy tap cannot hold the event loop. */
const READ_BATCH = 64;

/** TUNSETOFFLOAD bits: what the consumer can take in frames read from the tap. */
const TUN_F_CSUM = 0x01;
const TUN_F_TSO4 = 0x02;
const TUN_F_TSO6 = 0x04;
const TUN_F_TSO_ECN = 0x08;
const TUN_F_UFO = 0x10;

/** Offloads a tap's consumer accepts (virtio-net's guest features): partial checksums, TCP and UDP segments. */
export interface TapOffloads {
  csum?: boolean;
  tso4?: boolean;
  tso6?: boolean;
  ecn?: boolean;
  ufo?: boolean;
}

export interface TapOptions {
  /** Open with IFF_VNET_HDR (vnet_hdr=on). */
  vnetHdr?: boolean;
}

interface TunCalls {
  koffi: typeof Koffi;
  ioctl: (fd: number, request: number, arg: Buffer) => number;
  /** ioctl with an integer argument (TUNSETOFFLOAD takes its value, not a pointer). */
  ioctlValue: (fd: number, request: number, arg: number) => number;
  strerror: (errnum: number) => string;
  /** read(2) and write(2): -1 and errno on failure (EAGAIN is no exception, as it is for fs.readSync). */
  read: (fd: number, buf: Uint8Array, count: number) => number;
  write: (fd: number, buf: Uint8Array, count: number) => number;
}

let calls: TunCalls | null = null;

function load(): TunCalls {
  if (calls) return calls;
  const { koffi, lib, describe } = libc();
  calls = {
    koffi,
    // ioctl is variadic in C; the TUN requests take one pointer or one integer argument.
    ioctl: lib.func('ioctl', 'int', ['int', 'unsigned long', 'void *']) as TunCalls['ioctl'],
    ioctlValue: lib.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']) as TunCalls['ioctlValue'],
    strerror: describe,
    read: lib.func('long read(int fd, void *buf, unsigned long count)') as TunCalls['read'],
    write: lib.func('long write(int fd, const void *buf, unsigned long count)') as TunCalls['write'],
  };
  return calls;
}

function privilegeHint(code: string | undefined): string {
  return code === 'EPERM' || code === 'EACCES'
    ? ' (a tap device needs CAP_NET_ADMIN: run as root or grant the capability, as for QEMU)'
    : '';
}

/**
 * The error for vnet_hdr=on given the TUNGETFEATURES answer (null: the request
 * failed, a kernel too old to say), or null when the kernel offers IFF_VNET_HDR.
 */
export function vnetHdrRefusal(features: number | null): string | null {
  if (features !== null && (features & IFF_VNET_HDR) !== 0) return null;
  return 'tap: vnet_hdr=on: the kernel\'s TUN/TAP driver does not offer virtio-net headers (IFF_VNET_HDR); use vnet_hdr=off';
}

function offloadBits(o: TapOffloads): number {
  return (o.csum ? TUN_F_CSUM : 0) | (o.tso4 ? TUN_F_TSO4 : 0) | (o.tso6 ? TUN_F_TSO6 : 0) | (o.ecn ? TUN_F_TSO_ECN : 0) | (o.ufo ? TUN_F_UFO : 0);
}

export class TapBackend implements FrameBackend {
  readonly name: string;
  private handler: FrameHandler = () => {};
  private closed = false;
  private readonly readBuffer: Uint8Array;
  /** Header and frame side by side for one write (vnet_hdr=on). */
  private readonly writeBuffer: Uint8Array;
  private watch: FdWatch | null = null;
  /** Bytes of virtio-net header before each frame: 0 without vnet_hdr. */
  private vnetHdrLength: number;
  /** The empty header added to frames sent without one. */
  private emptyHeader: Uint8Array;

  private constructor(private readonly fd: number, readonly ifname: string, vnetHdr: boolean) {
    this.name = `tap ${ifname}`;
    this.vnetHdrLength = vnetHdr ? VNET_HDR_LEN : 0;
    this.emptyHeader = new Uint8Array(this.vnetHdrLength);
    this.readBuffer = new Uint8Array(vnetHdr ? VNET_HDR_LEN_MRG + MAX_GSO_FRAME : 65536);
    this.writeBuffer = new Uint8Array(vnetHdr ? VNET_HDR_LEN_MRG + MAX_GSO_FRAME : 0);
  }

  /**
   * Whether the kernel's TUN/TAP driver offers virtio-net headers (TUNGETFEATURES);
   * false also when /dev/net/tun cannot be opened (open() then says why).
   */
  static offersVnetHeaders(): boolean {
    const c = load();
    let fd: number;
    try {
      fd = openSync('/dev/net/tun', constants.O_RDWR);
    } catch {
      return false;
    }
    const features = Buffer.alloc(4);
    const ok = c.ioctl(fd, TUNGETFEATURES, features) >= 0;
    closeSync(fd);
    return vnetHdrRefusal(ok ? features.readUInt32LE(0) : null) === null;
  }

  /** Creates (or attaches to) the TAP interface `ifname` (the kernel names it when absent). */
  static open(ifname = '', options: TapOptions = {}): TapBackend {
    const c = load();
    let fd: number;
    try {
      fd = openSync('/dev/net/tun', constants.O_RDWR | constants.O_NONBLOCK);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new Error(`tap: cannot open /dev/net/tun: ${e.message}${privilegeHint(e.code)}`);
    }
    const vnetHdr = options.vnetHdr ?? false;
    if (vnetHdr) {
      const features = Buffer.alloc(4);
      const refusal = vnetHdrRefusal(c.ioctl(fd, TUNGETFEATURES, features) < 0 ? null : features.readUInt32LE(0));
      if (refusal !== null) {
        closeSync(fd);
        throw new Error(refusal);
      }
    }
    const ifreq = Buffer.alloc(IFREQ_SIZE);
    ifreq.write(ifname, 0, IFNAMSIZ - 1, 'latin1');
    ifreq.writeInt16LE(IFF_TAP | IFF_NO_PI | (vnetHdr ? IFF_VNET_HDR : 0), IFNAMSIZ);
    if (c.ioctl(fd, TUNSETIFF, ifreq) < 0) {
      const errno = c.koffi.errno();
      closeSync(fd);
      const code = errno === 1 ? 'EPERM' : errno === 13 ? 'EACCES' : undefined;
      const busy = errno === 16 ? ' (the interface exists and is in use, or is not a tap)' : '';
      throw new Error(`tap: cannot create interface '${ifname || 'tapN'}': ${c.strerror(errno)}${privilegeHint(code)}${busy}`);
    }
    const name = ifreq.toString('latin1', 0, IFNAMSIZ).replace(/\0.*$/s, '');
    const tap = new TapBackend(fd, name, vnetHdr);
    try {
      // A tap that existed before may keep another header size or offloads: start from the defaults.
      if (vnetHdr) {
        tap.setVnetHeaderLength(VNET_HDR_LEN);
        tap.setOffload({});
      }
      tap.watch = FdWatch.start(fd, 'tap', () => tap.drain(), (err) => tap.fail(err));
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    return tap;
  }

  /** The virtio-net header's size on this tap: 0 (vnet_hdr=off), 10 or 12. */
  get vnetHeaderLength(): number {
    return this.vnetHdrLength;
  }

  /** Sets the header size (TUNSETVNETHDRSZ): 12 when a virtio-net device uses num_buffers. Needs vnet_hdr=on. */
  setVnetHeaderLength(length: 10 | 12): void {
    if (this.vnetHdrLength === 0) throw new Error(`${this.name}: the header size needs vnet_hdr=on`);
    if (length !== VNET_HDR_LEN && length !== VNET_HDR_LEN_MRG) throw new Error(`${this.name}: a virtio-net header is 10 or 12 bytes, not ${String(length)}`);
    const size = Buffer.alloc(4);
    size.writeInt32LE(length);
    this.ioctlOrThrow(load().ioctl(this.fd, TUNSETVNETHDRSZ, size), `setting the virtio-net header size to ${length}`);
    this.vnetHdrLength = length;
    this.emptyHeader = new Uint8Array(length);
  }

  /**
   * Tells the kernel which offloads the consumer takes in frames read from the tap
   * (TUNSETOFFLOAD); segmentation needs csum. Needs vnet_hdr=on. Frames sent to the
   * tap may use any offload regardless.
   */
  setOffload(offloads: TapOffloads): void {
    if (this.vnetHdrLength === 0) throw new Error(`${this.name}: offloads need vnet_hdr=on`);
    this.ioctlOrThrow(load().ioctlValue(this.fd, TUNSETOFFLOAD, offloadBits(offloads)), `setting offloads ${JSON.stringify(offloads)}`);
  }

  private ioctlOrThrow(result: number, what: string): void {
    if (result >= 0) return;
    const c = load();
    throw new Error(`${this.name}: ${what}: ${c.strerror(c.koffi.errno())}`);
  }

  onFrame(handler: FrameHandler): void {
    this.handler = handler;
  }

  send(frame: Uint8Array, vnetHdr?: Uint8Array): void {
    if (this.closed || frame.length < MIN_FRAME) return;
    const gso = vnetHdr !== undefined && isGsoVnetHeader(vnetHdr);
    if (frame.length > (gso ? MAX_GSO_FRAME : MAX_FRAME)) return;
    // A write the kernel refuses (interface down, queue full, a header it rejects) drops the frame, as on a wire.
    const c = load();
    if (this.vnetHdrLength === 0) {
      // No header on this tap: a frame whose header asks for work cannot go out as it is.
      if (vnetHdr === undefined || !vnetHeaderAsksForWork(vnetHdr)) c.write(this.fd, frame, frame.length);
    } else {
      this.writeBuffer.set(this.headerFor(vnetHdr), 0);
      this.writeBuffer.set(frame, this.vnetHdrLength);
      c.write(this.fd, this.writeBuffer, this.vnetHdrLength + frame.length);
    }
  }

  /** The sender's header cut or padded to this tap's size (num_buffers means nothing to the kernel), or the empty one. */
  private headerFor(vnetHdr: Uint8Array | undefined): Uint8Array {
    if (vnetHdr === undefined) return this.emptyHeader;
    if (vnetHdr.length === this.vnetHdrLength) return vnetHdr;
    const header = new Uint8Array(this.vnetHdrLength);
    header.set(vnetHdr.subarray(0, Math.min(vnetHdr.length, VNET_HDR_LEN)));
    return header;
  }

  private drain(): void {
    const c = load();
    const hdr = this.vnetHdrLength;
    for (let n = 0; n < READ_BATCH && !this.closed; n++) {
      const length = c.read(this.fd, this.readBuffer, this.readBuffer.length);
      if (length < 0) {
        const errno = c.koffi.errno();
        if (errno === EAGAIN || errno === EINTR) return;
        return this.fail(new Error(`read: ${c.strerror(errno)}`));
      }
      if (length < hdr + MIN_FRAME) continue;
      // Copies of their own (frame-slab.ts's views): the read buffer is reused at once.
      const frame = copyFrame(this.readBuffer, hdr, length);
      if (hdr === 0 || isPlainVnetHeader(this.readBuffer)) this.handler(frame);
      else this.handler(frame, copyFrame(this.readBuffer, 0, hdr));
    }
  }

  private fail(err: Error): void {
    process.emitWarning(`${this.name}: ${err.message}; the backend stops reading`);
    void this.close();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.watch?.stop();
    closeSync(this.fd);
  }
}
