/**
 * The tap backend: a Linux TAP interface opened through /dev/net/tun (ioctl
 * TUNSETIFF with IFF_TAP | IFF_NO_PI, so each read and write is exactly one
 * Ethernet frame with no extra header). Needs CAP_NET_ADMIN, as QEMU's tap does;
 * without it open() fails with an error saying so. The interface is left down and
 * unconfigured (script=no): whoever runs tsemu sets it up, moves it into a
 * namespace, bridges it.
 *
 * Reading: the descriptor is non-blocking. One poll(2) at a time runs on a libuv
 * worker thread (koffi's asynchronous call) over the tap descriptor and an
 * eventfd; when it reports the tap readable, the main thread reads frames until
 * EAGAIN (at most a batch, then polls again) and hands each to the handler.
 * close() writes the eventfd so the pending poll returns and no thread stays
 * blocked, then closes both descriptors. Writes are synchronous (a tap write
 * never blocks; a frame the kernel refuses is dropped, as on a wire).
 */
import { closeSync, constants, openSync, readSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as Koffi from 'koffi';
import { MAX_FRAME, MIN_FRAME, type FrameBackend, type FrameHandler } from './backend.js';

const TUNSETIFF = 0x400454ca;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const IFREQ_SIZE = 40;
const IFNAMSIZ = 16;
const POLLIN = 0x0001;
const EFD_NONBLOCK = 0x800;
const EFD_CLOEXEC = 0x80000;
/** Frames read per wake-up before polling again, so one busy tap cannot hold the event loop. */
const READ_BATCH = 64;

interface TunCalls {
  koffi: typeof Koffi;
  ioctl: (fd: number, request: number, arg: Buffer) => number;
  poll: Koffi.KoffiFunc<(fds: Buffer, nfds: number, timeout: number) => number>;
  eventfd: (initval: number, flags: number) => number;
  strerror: (errnum: number) => string;
}

let calls: TunCalls | null = null;

function load(): TunCalls {
  if (calls) return calls;
  const koffi = createRequire(import.meta.url)('koffi') as typeof Koffi;
  const lib = koffi.load('libc.so.6');
  calls = {
    koffi,
    // ioctl is variadic in C; TUNSETIFF takes one pointer argument.
    ioctl: lib.func('ioctl', 'int', ['int', 'unsigned long', 'void *']) as TunCalls['ioctl'],
    poll: lib.func('int poll(void *fds, unsigned long nfds, int timeout)') as TunCalls['poll'],
    eventfd: lib.func('int eventfd(unsigned int initval, int flags)') as TunCalls['eventfd'],
    strerror: lib.func('const char *strerror(int errnum)') as TunCalls['strerror'],
  };
  return calls;
}

function privilegeHint(code: string | undefined): string {
  return code === 'EPERM' || code === 'EACCES'
    ? ' (a tap device needs CAP_NET_ADMIN: run as root or grant the capability, as for QEMU)'
    : '';
}

export class TapBackend implements FrameBackend {
  readonly name: string;
  private handler: FrameHandler = () => {};
  private closed = false;
  private polling = false;
  private readonly readBuffer = Buffer.alloc(65536);
  /** Two struct pollfd {int fd; short events; short revents}: the tap, then the eventfd. */
  private readonly pollFds = Buffer.alloc(16);

  private constructor(private readonly fd: number, private readonly wakeFd: number, readonly ifname: string) {
    this.name = `tap ${ifname}`;
    this.pollFds.writeInt32LE(fd, 0);
    this.pollFds.writeInt16LE(POLLIN, 4);
    this.pollFds.writeInt32LE(wakeFd, 8);
    this.pollFds.writeInt16LE(POLLIN, 12);
  }

  /** Creates (or attaches to) the TAP interface `ifname` (the kernel names it when absent). */
  static open(ifname = ''): TapBackend {
    const c = load();
    let fd: number;
    try {
      fd = openSync('/dev/net/tun', constants.O_RDWR | constants.O_NONBLOCK);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new Error(`tap: cannot open /dev/net/tun: ${e.message}${privilegeHint(e.code)}`);
    }
    const ifreq = Buffer.alloc(IFREQ_SIZE);
    ifreq.write(ifname, 0, IFNAMSIZ - 1, 'latin1');
    ifreq.writeInt16LE(IFF_TAP | IFF_NO_PI, IFNAMSIZ);
    if (c.ioctl(fd, TUNSETIFF, ifreq) < 0) {
      const errno = c.koffi.errno();
      closeSync(fd);
      const code = errno === 1 ? 'EPERM' : errno === 13 ? 'EACCES' : undefined;
      const busy = errno === 16 ? ' (the interface exists and is in use, or is not a tap)' : '';
      throw new Error(`tap: cannot create interface '${ifname || 'tapN'}': ${c.strerror(errno)}${privilegeHint(code)}${busy}`);
    }
    const wakeFd = c.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wakeFd < 0) {
      const errno = c.koffi.errno();
      closeSync(fd);
      throw new Error(`tap: eventfd: ${c.strerror(errno)}`);
    }
    const name = ifreq.toString('latin1', 0, IFNAMSIZ).replace(/\0.*$/s, '');
    const tap = new TapBackend(fd, wakeFd, name);
    tap.poll();
    return tap;
  }

  onFrame(handler: FrameHandler): void {
    this.handler = handler;
  }

  send(frame: Uint8Array): void {
    if (this.closed || frame.length < MIN_FRAME || frame.length > MAX_FRAME) return;
    try {
      writeSync(this.fd, frame);
    } catch {
      // The kernel refused the frame (interface down, queue full): dropped, as on a wire.
    }
  }

  private poll(): void {
    this.polling = true;
    this.pollFds.writeInt16LE(0, 6);
    this.pollFds.writeInt16LE(0, 14);
    load().poll.async(this.pollFds, 2, -1, (err: unknown) => {
      this.polling = false;
      if (this.closed) return this.release();
      if (err) return this.fail(err as Error);
      this.drain();
      this.poll();
    });
  }

  private drain(): void {
    for (let n = 0; n < READ_BATCH; n++) {
      let length: number;
      try {
        length = readSync(this.fd, this.readBuffer, 0, this.readBuffer.length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN' || code === 'EWOULDBLOCK' || code === 'EINTR') return;
        return this.fail(err as Error);
      }
      // A copy of its own (a plain Uint8Array): the read buffer is reused at once.
      if (length >= MIN_FRAME) this.handler(new Uint8Array(this.readBuffer.subarray(0, length)));
    }
  }

  private fail(err: Error): void {
    process.emitWarning(`${this.name}: ${err.message}; the backend stops reading`);
    void this.close();
  }

  private released = false;

  private release(): void {
    if (this.released) return;
    this.released = true;
    closeSync(this.fd);
    closeSync(this.wakeFd);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.polling) return this.release();
    const one = Buffer.alloc(8);
    one.writeBigUInt64LE(1n);
    writeSync(this.wakeFd, one);
    // The pending poll returns at once and its callback releases the descriptors.
    await new Promise<void>((resolve) => {
      const check = (): void => (this.released ? resolve() : void setImmediate(check));
      check();
    });
  }
}
