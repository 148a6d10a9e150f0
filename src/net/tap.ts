/**
 * The tap backend: a Linux TAP interface opened through /dev/net/tun (ioctl
 * TUNSETIFF with IFF_TAP | IFF_NO_PI, so each read and write is exactly one
 * Ethernet frame with no extra header). Needs CAP_NET_ADMIN, as QEMU's tap does;
 * without it open() fails with an error saying so. The interface is left down and
 * unconfigured (script=no): whoever runs tsemu sets it up, moves it into a
 * namespace, bridges it.
 *
 * Reading: the descriptor is non-blocking and an FdWatch (fd-watch.ts) polls it
 * off the main thread; when it is readable, the main thread reads frames until
 * EAGAIN (at most a batch, then polls again) and hands each to the handler.
 * close() stops the watch, then closes the descriptor. Writes are synchronous (a tap write
 * never blocks; a frame the kernel refuses is dropped, as on a wire).
 */
import { closeSync, constants, openSync, readSync, writeSync } from 'node:fs';
import type * as Koffi from 'koffi';
import { libc } from '../util/libc.js';
import { MAX_FRAME, MIN_FRAME, type FrameBackend, type FrameHandler } from './backend.js';
import { FdWatch } from './fd-watch.js';

const TUNSETIFF = 0x400454ca;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const IFREQ_SIZE = 40;
const IFNAMSIZ = 16;
/** Frames read per wake-up before polling again, so one busy tap cannot hold the event loop. */
const READ_BATCH = 64;

interface TunCalls {
  koffi: typeof Koffi;
  ioctl: (fd: number, request: number, arg: Buffer) => number;
  strerror: (errnum: number) => string;
}

let calls: TunCalls | null = null;

function load(): TunCalls {
  if (calls) return calls;
  const { koffi, lib, describe } = libc();
  calls = {
    koffi,
    // ioctl is variadic in C; TUNSETIFF takes one pointer argument.
    ioctl: lib.func('ioctl', 'int', ['int', 'unsigned long', 'void *']) as TunCalls['ioctl'],
    strerror: describe,
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
  private readonly readBuffer = Buffer.alloc(65536);
  private watch: FdWatch | null = null;

  private constructor(private readonly fd: number, readonly ifname: string) {
    this.name = `tap ${ifname}`;
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
    const name = ifreq.toString('latin1', 0, IFNAMSIZ).replace(/\0.*$/s, '');
    const tap = new TapBackend(fd, name);
    try {
      tap.watch = FdWatch.start(fd, 'tap', () => tap.drain(), (err) => tap.fail(err));
    } catch (err) {
      closeSync(fd);
      throw err;
    }
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

  private drain(): void {
    for (let n = 0; n < READ_BATCH && !this.closed; n++) {
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

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.watch?.stop();
    closeSync(this.fd);
  }
}
