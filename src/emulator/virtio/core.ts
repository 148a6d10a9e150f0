/**
 * The transport-independent half of a virtio device: what virtio-mmio and
 * virtio-pci registers both reach. It holds the device status, feature
 * negotiation, the per-queue registers and queues, the interrupt status with
 * its line, the configuration generation, and the needs-reset state.
 *
 * Theory of operation. The driver resets the device (status 0), sets
 * ACKNOWLEDGE and DRIVER, reads the offered features (the model's bits plus
 * VERSION_1, INDIRECT_DESC and EVENT_IDX) and writes the ones it accepts,
 * sets FEATURES_OK (kept only if the set is a subset of the offer and has
 * VERSION_1: tsemu's devices are modern only), places each queue and marks it
 * ready (the layout is checked then), and sets DRIVER_OK: the model starts and
 * any chains already available are handled. A notification drains the queue's
 * available ring into the model. Completions go on the used ring at once; the
 * interrupt decision for all of them is taken once per microtask, so a burst
 * of completions raises the line once. The line is high while the interrupt
 * status has a bit set (used buffer, configuration change); the driver's
 * acknowledgement clears bits. The status may be a cell another thread clears
 * bits of too (interrupt-status.ts), so every change drives the line with
 * followStatus().
 *
 * Needs-reset: a guest fault (VirtioFault from a queue or a model, or any
 * other error a model throws while handling guest data) logs one line on
 * stderr naming the device, sets DEVICE_NEEDS_RESET, raises a configuration
 * interrupt, and stops the device: queues detach, notifications are ignored,
 * until the driver writes status 0. Nothing propagates to the caller, so a
 * vCPU's MMIO access never fails because of what the guest put in RAM.
 */
import type { IrqLine } from '../bus/interfaces.js';
import type { VirtioDevice, VirtioHost } from './device.js';
import type { GuestRam } from './guest-ram.js';
import { LocalInterruptStatus, followStatus, type InterruptStatus } from './interrupt-status.js';
import {
  F_EVENT_IDX, F_INDIRECT_DESC, F_VERSION_1, INT_CONFIG_CHANGE, INT_USED_BUFFER, STATUS, featureBits, hasFeature,
} from './spec.js';
import { SplitVirtqueue, type DescriptorChain } from './virtqueue.js';

const TRANSPORT_FEATURES = featureBits(F_VERSION_1, F_INDIRECT_DESC, F_EVENT_IDX);
const RESOLVED = Promise.resolve();

/** A queue's registers as the driver set them; `queue` exists while it is ready. */
export interface QueueRegisters {
  size: number;
  desc: number;
  driver: number;
  device: number;
  queue: SplitVirtqueue | null;
}

export interface VirtioCoreOptions {
  ram: GuestRam;
  irq: IrqLine;
  /** Where the device sits, for log lines (e.g. "virtio-mmio@10008000"). */
  location: string;
  /** Receives log lines (default: stderr). */
  log?: (line: string) => void;
  /** Where the interrupt status bits live (default: a plain number; the virt machine shares them with its vCPU threads). */
  interruptStatus?: InterruptStatus;
}

export class VirtioCore {
  private statusBits = 0;
  private driverFeatures = 0n;
  private accepted = 0n;
  private readonly isr: InterruptStatus;
  private generation = 0;
  private queues: QueueRegisters[];
  private host: (VirtioHost & { alive: boolean }) | null = null;
  private interruptScheduled = false;
  private readonly offered: bigint;
  private readonly log: (line: string) => void;

  constructor(readonly device: VirtioDevice, private readonly options: VirtioCoreOptions) {
    this.offered = device.features | TRANSPORT_FEATURES;
    this.log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.isr = options.interruptStatus ?? new LocalInterruptStatus();
    this.queues = this.freshQueues();
  }

  private freshQueues(): QueueRegisters[] {
    return this.device.queueSizes.map((max) => ({ size: max, desc: 0, driver: 0, device: 0, queue: null }));
  }

  get status(): number {
    return this.statusBits;
  }

  get interruptStatus(): number {
    return this.isr.value;
  }

  get configGeneration(): number {
    return this.generation;
  }

  get queueCount(): number {
    return this.queues.length;
  }

  /** Bits 32*select .. 32*select+31 of the offered features. */
  deviceFeatures(select: number): number {
    return Number((this.offered >> BigInt(32 * select)) & 0xffff_ffffn);
  }

  setDriverFeatures(select: number, value: number): void {
    if (this.statusBits & STATUS.FEATURES_OK || select > 1) return;
    const shift = BigInt(32 * select);
    this.driverFeatures = (this.driverFeatures & ~(0xffff_ffffn << shift)) | (BigInt(value >>> 0) << shift);
  }

  /** The registers of queue `index`, or undefined past the device's queues. */
  queueRegisters(index: number): QueueRegisters | undefined {
    return this.queues[index];
  }

  maxQueueSize(index: number): number {
    return this.device.queueSizes[index] ?? 0;
  }

  writeStatus(value: number): void {
    if (value === 0) {
      this.reset();
      return;
    }
    const added = value & ~this.statusBits;
    let next = value | (this.statusBits & STATUS.DEVICE_NEEDS_RESET);
    if (added & STATUS.FEATURES_OK && !this.featuresAcceptable()) next &= ~STATUS.FEATURES_OK;
    this.statusBits = next;
    if (added & STATUS.DRIVER_OK && next & STATUS.FEATURES_OK && !(next & STATUS.DEVICE_NEEDS_RESET)) this.start();
  }

  private featuresAcceptable(): boolean {
    if ((this.driverFeatures & ~this.offered) !== 0n || !hasFeature(this.driverFeatures, F_VERSION_1)) return false;
    this.accepted = this.driverFeatures;
    return true;
  }

  /** Marks queue `index` ready (its layout is checked now) or not ready. */
  setQueueReady(index: number, ready: boolean): void {
    const q = this.queues[index];
    if (!q) return;
    q.queue?.detach();
    q.queue = null;
    if (!ready || this.broken) return;
    this.guarded(() => {
      q.queue = new SplitVirtqueue(this.options.ram, q, this.maxQueueSize(index), {
        eventIdx: hasFeature(this.accepted, F_EVENT_IDX),
        indirect: hasFeature(this.accepted, F_INDIRECT_DESC),
      });
    });
  }

  /** The driver notified queue `index`: hand its available chains to the model. */
  notify(index: number): void {
    if (!this.host || this.broken) return;
    const queue = this.queues[index]?.queue;
    if (!queue) return;
    this.guarded(() => {
      for (let chain = queue.pop(); chain && !this.broken; chain = queue.pop()) this.device.handle(index, chain);
    });
  }

  acknowledgeInterrupt(bits: number): void {
    this.isr.clear(bits);
    this.updateLine();
  }

  /** Reads `size` bytes (1, 2, 4) of the configuration space at `offset`, little-endian; 0 past its end. */
  readConfig(offset: number, size: number): number {
    const config = this.device.config();
    let value = 0;
    for (let i = size - 1; i >= 0; i--) value = value * 256 + (config[offset + i] ?? 0);
    return value;
  }

  writeConfig(offset: number, size: number, value: number): void {
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i++) bytes[i] = (value >>> (8 * i)) & 0xff;
    this.device.writeConfig?.(offset, bytes);
  }

  private get broken(): boolean {
    return (this.statusBits & STATUS.DEVICE_NEEDS_RESET) !== 0;
  }

  private start(): void {
    const host = {
      alive: true,
      features: this.accepted,
      complete: (chain: DescriptorChain, written: number) => {
        if (host.alive) this.complete(chain, written);
      },
      fault: (message: string) => {
        if (host.alive) this.fault(message);
      },
      configChanged: () => {
        if (host.alive) this.configChanged();
      },
    };
    this.host = host;
    this.guarded(() => this.device.start(host));
    for (let index = 0; index < this.queues.length; index++) this.notify(index);
  }

  private reset(): void {
    this.stopDevice();
    this.statusBits = 0;
    this.driverFeatures = 0n;
    this.accepted = 0n;
    this.queues = this.freshQueues();
    this.isr.clear(this.isr.value);
    this.updateLine();
  }

  private stopDevice(): void {
    if (this.host) this.host.alive = false;
    this.host = null;
    for (const q of this.queues) q.queue?.detach();
    this.device.reset();
  }

  private complete(chain: DescriptorChain, written: number): void {
    this.guarded(() => chain.queue.push(chain, written));
    if (this.interruptScheduled) return;
    this.interruptScheduled = true;
    // A promise reaction, not queueMicrotask(): Node wraps each of those in an AsyncResource.
    void RESOLVED.then(this.interruptIfDue);
  }

  /** The interrupt decision for every completion since the last one (see the header). */
  private readonly interruptIfDue = (): void => {
    this.interruptScheduled = false;
    let due = false;
    for (const q of this.queues) if (q.queue?.takeInterrupt()) due = true;
    if (due) {
      this.isr.set(INT_USED_BUFFER);
      this.updateLine();
    }
  };

  private configChanged(): void {
    this.generation = (this.generation + 1) >>> 0;
    this.isr.set(INT_CONFIG_CHANGE);
    this.updateLine();
  }

  /** Enters needs-reset with a log line; the device stays stopped until the driver resets it. */
  private fault(message: string): void {
    if (this.broken) return;
    this.log(`tsemu: ${this.device.name} (${this.options.location}): ${message}; the device needs a reset`);
    this.statusBits |= STATUS.DEVICE_NEEDS_RESET;
    this.stopDevice();
    this.configChanged();
  }

  /** Runs guest-driven work; any error it throws becomes a fault, never the caller's exception. */
  private guarded(work: () => void): void {
    try {
      work();
    } catch (e) {
      this.fault((e as Error).message);
    }
  }

  private updateLine(): void {
    followStatus(this.isr, this.options.irq);
  }
}
