/**
 * The host side of KVM's irqfd and ioeventfd: eventfds, an interrupt line that
 * injects through an irqfd, and a doorbell the guest rings through an ioeventfd.
 *
 * Theory of operation. An EventFd is eventfd(2) (non-blocking, close-on-exec)
 * through the shared libc: signal() adds 1 to its counter, take() reads and
 * clears it (0 when nothing was signalled). irqfdLine() is an IrqLine whose
 * rising edge signals an eventfd KVM_IRQFD bound to a GSI: the kernel raises
 * and lowers the GSI, one edge, without a KVM_IRQ_LINE call, and any thread
 * could signal it. A Doorbell is an eventfd that KVM_IOEVENTFD registrations
 * signal when the guest writes what they match: the vCPU goes on in the kernel,
 * no exit reaches the vCPU thread or the main thread's device models; the main
 * thread learns of it from FdWatch (poll(2) on a libuv worker thread) and calls
 * onRing with the number of writes since the last call.
 *
 * Limits: an irqfd line delivers edges, right for ISA interrupts, which the
 * IOAPIC and the PICs take edge-triggered; a level-triggered line would need
 * KVM's resample mode, which nothing here uses. A doorbell carries no data
 * beyond its match, so it suits writes whose value the registration names.
 * Each doorbell keeps one libuv worker thread in poll(2) until stop(). KVM holds
 * its own reference to a registered eventfd: closing ours first is harmless.
 */
import { closeSync, readSync, writeSync } from 'node:fs';
import type { IrqLine } from '../../bus/interfaces.js';
import { FdWatch } from '../../../net/fd-watch.js';
import { libc } from '../../../util/libc.js';
import type { IoEventFd } from './abi.js';
import type { KvmVm } from './kvm.js';

const EFD_NONBLOCK = 0x800;
const EFD_CLOEXEC = 0x80000;

let eventfdCall: ((initval: number, flags: number) => number) | null = null;

export class EventFd {
  private readonly counter = Buffer.alloc(8);

  private constructor(readonly fd: number) {}

  static create(what: string): EventFd {
    const c = libc();
    eventfdCall ??= c.lib.func('int eventfd(unsigned int initval, int flags)') as (initval: number, flags: number) => number;
    const fd = eventfdCall(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) throw new Error(`${what}: eventfd: ${c.describe(c.errno())}`);
    return new EventFd(fd);
  }

  signal(): void {
    this.counter.writeBigUInt64LE(1n);
    writeSync(this.fd, this.counter);
  }

  /** The count signalled since the last take, which clears it (0 when none). */
  take(): number {
    try {
      readSync(this.fd, this.counter);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return 0;
      throw err;
    }
    return Number(this.counter.readBigUInt64LE());
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** An interrupt line into GSI `gsi` of `vm`'s in-kernel irqchip through an irqfd: each rising edge is one edge there. */
export function irqfdLine(vm: KvmVm, gsi: number): IrqLine & { close(): void } {
  const event = EventFd.create(`irqfd for GSI ${gsi}`);
  try {
    vm.addIrqfd(event.fd, gsi);
  } catch (err) {
    event.close();
    throw err;
  }
  let level = false;
  return {
    set(high: boolean): void {
      if (high && !level) event.signal();
      level = high;
    },
    close: () => event.close(),
  };
}

export class Doorbell {
  private stopped = false;

  private constructor(private readonly event: EventFd, private readonly watch: FdWatch) {}

  /**
   * Registers `matches` (guest writes) on one eventfd of `vm` and watches it: onRing(count) runs on this thread
   * after the guest wrote; onError if watching fails.
   */
  static start(
    vm: KvmVm,
    what: string,
    matches: ReadonlyArray<Omit<IoEventFd, 'fd'>>,
    onRing: (count: number) => void,
    onError: (err: Error) => void,
  ): Doorbell {
    const event = EventFd.create(what);
    try {
      for (const match of matches) vm.addIoEventFd({ ...match, fd: event.fd });
      const watch = FdWatch.start(event.fd, what, () => {
        const count = event.take();
        if (count > 0) onRing(count);
      }, onError);
      return new Doorbell(event, watch);
    } catch (err) {
      event.close();
      throw err;
    }
  }

  /** Stops watching and closes the eventfd. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.watch.stop();
    this.event.close();
  }
}
