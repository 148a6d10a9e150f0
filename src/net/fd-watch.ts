/**
 * Readiness of a non-blocking descriptor Node does not manage itself (a tap, an
 * ICMP socket), without blocking the event loop: one poll(2) at a time runs on a
 * libuv worker thread (koffi's asynchronous call) over the descriptor and an
 * eventfd. When poll reports the descriptor readable, the owner's onReadable runs
 * on the main thread (it reads until EAGAIN, or a batch) and polling resumes.
 * stop() writes the eventfd so a pending poll returns at once and no thread stays
 * blocked; it resolves once no poll is pending and the eventfd is closed. The
 * watched descriptor stays the owner's to close, after stop() resolves.
 */
import { closeSync, writeSync } from 'node:fs';
import type * as Koffi from 'koffi';
import { libc } from '../util/libc.js';

const POLLIN = 0x0001;
const EFD_NONBLOCK = 0x800;
const EFD_CLOEXEC = 0x80000;

interface PollCalls {
  koffi: typeof Koffi;
  poll: Koffi.KoffiFunc<(fds: Buffer, nfds: number, timeout: number) => number>;
  eventfd: (initval: number, flags: number) => number;
  strerror: (errnum: number) => string;
}

let calls: PollCalls | null = null;

function load(): PollCalls {
  if (calls) return calls;
  const { koffi, lib, describe } = libc();
  calls = {
    koffi,
    poll: lib.func('int poll(void *fds, unsigned long nfds, int timeout)') as PollCalls['poll'],
    eventfd: lib.func('int eventfd(unsigned int initval, int flags)') as PollCalls['eventfd'],
    strerror: describe,
  };
  return calls;
}

export class FdWatch {
  private stopped = false;
  private polling = false;
  private released = false;
  /** Two struct pollfd {int fd; short events; short revents}: the watched descriptor, then the eventfd. */
  private readonly pollFds = Buffer.alloc(16);

  private constructor(fd: number, private readonly wakeFd: number, private readonly onReadable: () => void, private readonly onError: (err: Error) => void) {
    this.pollFds.writeInt32LE(fd, 0);
    this.pollFds.writeInt16LE(POLLIN, 4);
    this.pollFds.writeInt32LE(wakeFd, 8);
    this.pollFds.writeInt16LE(POLLIN, 12);
  }

  /** Starts watching `fd`; throws (naming `what`) when no eventfd can be made. */
  static start(fd: number, what: string, onReadable: () => void, onError: (err: Error) => void): FdWatch {
    const c = load();
    const wakeFd = c.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wakeFd < 0) throw new Error(`${what}: eventfd: ${c.strerror(c.koffi.errno())}`);
    const watch = new FdWatch(fd, wakeFd, onReadable, onError);
    watch.poll();
    return watch;
  }

  private poll(): void {
    this.polling = true;
    this.pollFds.writeInt16LE(0, 6);
    this.pollFds.writeInt16LE(0, 14);
    load().poll.async(this.pollFds, 2, -1, (err: unknown) => {
      this.polling = false;
      if (this.stopped) return this.release();
      if (err) return this.onError(err as Error);
      this.onReadable();
      if (!this.stopped) this.poll();
      else this.release();
    });
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    closeSync(this.wakeFd);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (!this.polling) return this.release();
    const one = Buffer.alloc(8);
    one.writeBigUInt64LE(1n);
    writeSync(this.wakeFd, one);
    // The pending poll returns at once and its callback releases the eventfd.
    await new Promise<void>((resolve) => {
      const check = (): void => (this.released ? resolve() : void setImmediate(check));
      check();
    });
  }
}
