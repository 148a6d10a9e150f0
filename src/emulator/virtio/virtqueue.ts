/**
 * The split virtqueue (virtio 1.x, "Split Virtqueues"), the device's side.
 *
 * Theory of operation. The driver gives three areas in guest RAM: the
 * descriptor table (16-byte entries: addr, len, flags, next), the available
 * ring (flags, idx, ring[size], used_event) and the used ring (flags, idx,
 * ring[size] of {id, len}, avail_event). The constructor checks the layout
 * (size a power of 2 and at most the device's maximum, areas aligned and
 * inside RAM) and keeps live views of the three areas. pop() takes the next
 * head from the available ring and walks its chain, following NEXT links and
 * at most one indirect table (VIRTIO_F_INDIRECT_DESC), into views of the
 * device-readable buffers followed by the device-writable ones. push()
 * returns a chain on the used ring. The ring indices are read and written
 * with Atomics, which orders the entries behind them against the vCPU threads.
 *
 * Notification suppression (VIRTIO_F_EVENT_IDX): when pop() finds the ring
 * empty it publishes avail_event (the driver kicks again once it passes it)
 * and looks once more, so a buffer added meanwhile is not missed.
 * takeInterrupt() says whether the used entries pushed since the last
 * interrupt deserve one: under EVENT_IDX when the used index crossed the
 * driver's used_event, otherwise unless the driver set NO_INTERRUPT.
 *
 * Guest faults (a descriptor loop, a next index past the table, a buffer or
 * ring outside RAM, an available index that ran ahead by more than the queue
 * size, a nested or malformed indirect table, a readable buffer after a
 * writable one, a bad size) throw VirtioFault; the core turns that into the
 * device's needs-reset state. A detached queue (device reset) ignores push().
 */
import { GuestMemoryError } from '../bus/interfaces.js';
import type { GuestRam } from './guest-ram.js';
import {
  AVAIL_F_NO_INTERRUPT, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, DESC_SIZE, MAX_QUEUE_SIZE,
} from './spec.js';

/** A guest-side error that puts the device in the needs-reset state. */
export class VirtioFault extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VirtioFault';
  }
}

/** Where the driver placed a queue (guest-physical addresses) and its size. */
export interface QueueLayout {
  size: number;
  desc: number;
  driver: number;
  device: number;
}

export interface QueueFeatures {
  eventIdx: boolean;
  indirect: boolean;
}

/** One available buffer: its head index and views of its device-readable, then device-writable parts. */
export interface DescriptorChain {
  readonly queue: SplitVirtqueue;
  readonly head: number;
  readonly readable: readonly Uint8Array[];
  readonly writable: readonly Uint8Array[];
  readonly readableBytes: number;
  readonly writableBytes: number;
}

const isPowerOf2 = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;

function outside(what: string, gpa: number, length: number): never {
  throw new VirtioFault(`${what} at 0x${gpa.toString(16)}+${length} is outside guest RAM`);
}

export class SplitVirtqueue {
  readonly size: number;
  private readonly table: DataView;
  private readonly avail: Uint16Array;
  private readonly used: Uint16Array;
  private readonly usedView: DataView;
  private lastAvail = 0;
  private usedIdx = 0;
  /** The used index at the last interrupt (or at start). */
  private signalled = 0;
  private detached = false;
  private whole: DataView | null = null;

  constructor(
    private readonly ram: GuestRam,
    layout: QueueLayout,
    maxSize: number,
    private readonly features: QueueFeatures,
  ) {
    const { size } = layout;
    if (!isPowerOf2(size) || size > Math.min(maxSize, MAX_QUEUE_SIZE)) {
      throw new VirtioFault(`queue size ${size} is not a power of 2 up to ${maxSize}`);
    }
    this.size = size;
    const table = this.area('descriptor table', layout.desc, DESC_SIZE * size, 16);
    const avail = this.area('available ring', layout.driver, 6 + 2 * size, 2);
    const used = this.area('used ring', layout.device, 6 + 8 * size, 4);
    this.table = new DataView(table.buffer, table.byteOffset, table.length);
    this.avail = new Uint16Array(avail.buffer, avail.byteOffset, avail.length / 2);
    this.used = new Uint16Array(used.buffer, used.byteOffset, 3 + 4 * size);
    this.usedView = new DataView(used.buffer, used.byteOffset, used.length);
  }

  private area(what: string, gpa: number, length: number, align: number): Uint8Array {
    if (gpa % align !== 0) throw new VirtioFault(`${what} at 0x${gpa.toString(16)} is not ${align}-byte aligned`);
    return this.view(what, gpa, length);
  }

  private view(what: string, gpa: number, length: number): Uint8Array {
    return this.viewOrNull(gpa, length) ?? outside(what, gpa, length);
  }

  /** A view of guest RAM, or null where the range is not all RAM (the caller names what it was). */
  private viewOrNull(gpa: number, length: number): Uint8Array | null {
    try {
      return this.ram.view(gpa, length);
    } catch (e) {
      if (e instanceof GuestMemoryError) return null;
      throw e;
    }
  }

  /** A DataView over the whole buffer behind `bytes`, made once per buffer (not one per indirect table). */
  private wholeView(bytes: Uint8Array): DataView {
    let whole = this.whole;
    if (whole?.buffer !== bytes.buffer) whole = this.whole = new DataView(bytes.buffer);
    return whole;
  }

  /** Stops the queue for good (device reset): later pushes are dropped. */
  detach(): void {
    this.detached = true;
  }

  /** The next available chain, or null when the ring is empty. */
  pop(): DescriptorChain | null {
    let availIdx = Atomics.load(this.avail, 1);
    if (availIdx === this.lastAvail) {
      if (!this.features.eventIdx) return null;
      Atomics.store(this.used, 2 + 4 * this.size, this.lastAvail);
      availIdx = Atomics.load(this.avail, 1);
      if (availIdx === this.lastAvail) return null;
    }
    const pending = (availIdx - this.lastAvail) & 0xffff;
    if (pending > this.size) throw new VirtioFault(`available index ${availIdx} is ${pending} entries ahead, more than the queue size ${this.size}`);
    const head = this.avail[2 + (this.lastAvail % this.size)]!;
    if (head >= this.size) throw new VirtioFault(`available ring names descriptor ${head}, past the table of ${this.size}`);
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    return this.walk(head);
  }

  private walk(head: number): DescriptorChain {
    const readable: Uint8Array[] = [];
    const writable: Uint8Array[] = [];
    let readableBytes = 0;
    let writableBytes = 0;
    let table = this.table;
    let tableBase = 0;
    let entries = this.size;
    let index = head;
    let seen = 0;
    let indirect = false;
    for (;;) {
      if (++seen > entries) throw new VirtioFault(`descriptor chain from ${head} loops (more than ${entries} descriptors)`);
      const at = tableBase + index * DESC_SIZE;
      const addr = table.getUint32(at, true) + table.getUint32(at + 4, true) * 0x1_0000_0000;
      const len = table.getUint32(at + 8, true);
      const flags = table.getUint16(at + 12, true);
      const next = table.getUint16(at + 14, true);
      if (flags & DESC_F_INDIRECT) {
        if (indirect) throw new VirtioFault(`descriptor ${index} of an indirect table is itself indirect`);
        if (!this.features.indirect) throw new VirtioFault(`descriptor ${index} is indirect but VIRTIO_F_INDIRECT_DESC was not negotiated`);
        if (flags & DESC_F_NEXT) throw new VirtioFault(`descriptor ${index} is indirect and has a next descriptor`);
        if (len === 0 || len % DESC_SIZE !== 0) throw new VirtioFault(`indirect table of ${len} bytes is not a whole number of descriptors`);
        const bytes = this.view('indirect table', addr, len);
        table = this.wholeView(bytes);
        tableBase = bytes.byteOffset;
        entries = len / DESC_SIZE;
        index = 0;
        seen = 0;
        indirect = true;
        continue;
      }
      const buffer = this.viewOrNull(addr, len) ?? outside(`buffer of descriptor ${index}`, addr, len);
      if (flags & DESC_F_WRITE) {
        writable.push(buffer);
        writableBytes += len;
      } else {
        if (writable.length > 0) throw new VirtioFault(`descriptor ${index} is device-readable but follows a device-writable one`);
        readable.push(buffer);
        readableBytes += len;
      }
      if (!(flags & DESC_F_NEXT)) break;
      if (next >= entries) throw new VirtioFault(`descriptor ${index} links to ${next}, past the table of ${entries}`);
      index = next;
    }
    return { queue: this, head, readable, writable, readableBytes, writableBytes };
  }

  /** Returns a chain to the driver with `written` bytes written into its writable part. */
  push(chain: DescriptorChain, written: number): void {
    if (this.detached) return;
    const slot = this.usedIdx % this.size;
    this.usedView.setUint32(4 + 8 * slot, chain.head, true);
    this.usedView.setUint32(8 + 8 * slot, written, true);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    Atomics.store(this.used, 1, this.usedIdx);
  }

  /** Whether the entries pushed since the last interrupt call for one now (and if so, counts it as sent). */
  takeInterrupt(): boolean {
    if (this.detached || this.usedIdx === this.signalled) return false;
    const old = this.signalled;
    this.signalled = this.usedIdx;
    if (this.features.eventIdx) {
      const usedEvent = Atomics.load(this.avail, 2 + this.size);
      return ((this.usedIdx - usedEvent - 1) & 0xffff) < ((this.usedIdx - old) & 0xffff);
    }
    return (Atomics.load(this.avail, 0) & AVAIL_F_NO_INTERRUPT) === 0;
  }
}
