/**
 * A virtio driver in miniature for the device tests: guest RAM as a plain
 * byte array (FakeRam, a GuestRam), and TestDriver, which initialises a
 * device through its virtio-mmio registers as Linux does (status steps,
 * feature words, queue layout, DRIVER_OK), builds descriptor chains (direct
 * or through an indirect table) in that RAM, kicks queues and reads the used
 * ring. Tests corrupt the structures it wrote to provoke guest faults.
 */
import { GuestMemoryError, type IrqLine } from '../../src/emulator/bus/interfaces.js';
import type { GuestRam } from '../../src/emulator/virtio/guest-ram.js';
import { VirtioCore } from '../../src/emulator/virtio/core.js';
import type { VirtioDevice } from '../../src/emulator/virtio/device.js';
import type { InterruptStatus } from '../../src/emulator/virtio/interrupt-status.js';
import { VirtioMmio } from '../../src/emulator/virtio/mmio.js';
import { DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, STATUS } from '../../src/emulator/virtio/spec.js';

export const RAM_BASE = 0x8000_0000;

export class FakeRam implements GuestRam {
  readonly bytes: Uint8Array;
  readonly dv: DataView;
  constructor(readonly size = 1 << 20) {
    this.bytes = new Uint8Array(size);
    this.dv = new DataView(this.bytes.buffer);
  }

  private at(gpa: number, length: number): number {
    if (gpa < RAM_BASE || gpa + length > RAM_BASE + this.size) throw new GuestMemoryError(gpa, length);
    return gpa - RAM_BASE;
  }

  read(gpa: number, dst: Uint8Array): void {
    const at = this.at(gpa, dst.length);
    dst.set(this.bytes.subarray(at, at + dst.length));
  }

  write(gpa: number, src: Uint8Array): void {
    this.bytes.set(src, this.at(gpa, src.length));
  }

  view(gpa: number, length: number): Uint8Array {
    const at = this.at(gpa, length);
    return this.bytes.subarray(at, at + length);
  }
}

/** One buffer of a chain: bytes the device reads, or room for `write` bytes it writes. */
export type Buffer = { read: Uint8Array } | { write: number };

export interface UsedEntry {
  id: number;
  len: number;
  data: Uint8Array;
  writable: Uint8Array;
}

export interface QueueState {
  size: number;
  desc: number;
  avail: number;
  used: number;
  nextDesc: number;
  availIdx: number;
  usedSeen: number;
}

export class TestDriver {
  readonly ram = new FakeRam();
  readonly lines: string[] = [];
  irq = false;
  readonly core: VirtioCore;
  readonly mmio: VirtioMmio;
  readonly queues: QueueState[] = [];
  private heap = RAM_BASE + 0x1000;
  /** Where each chain's writable buffers went, by queue and head. */
  private readonly writable = new Map<string, number[][]>();

  /** `wire` also gets the line's moves; `interruptStatus` is the core's status cell (default: its own). */
  constructor(readonly device: VirtioDevice, opts: { wire?: IrqLine; interruptStatus?: InterruptStatus } = {}) {
    this.core = new VirtioCore(device, {
      ram: this.ram,
      irq: {
        set: (level) => {
          this.irq = level;
          opts.wire?.set(level);
        },
      },
      location: 'virtio-mmio@10008000',
      log: (line) => this.lines.push(line),
      interruptStatus: opts.interruptStatus,
    });
    this.mmio = new VirtioMmio(this.core);
  }

  reg(offset: number): number {
    return this.mmio.read(offset, 4);
  }

  set(offset: number, value: number): void {
    this.mmio.write(offset, 4, value);
  }

  alloc(bytes: number, align = 16): number {
    this.heap = Math.ceil(this.heap / align) * align;
    const at = this.heap;
    this.heap += bytes;
    return at;
  }

  /** Status steps and feature negotiation; returns the accepted features. `drop` bits are refused. */
  negotiate(drop = 0n): bigint {
    this.set(0x070, 0);
    this.set(0x070, STATUS.ACKNOWLEDGE);
    this.set(0x070, STATUS.ACKNOWLEDGE | STATUS.DRIVER);
    let offered = 0n;
    for (const sel of [0, 1]) {
      this.set(0x014, sel);
      offered |= BigInt(this.reg(0x010) >>> 0) << BigInt(32 * sel);
    }
    const accepted = offered & ~drop;
    for (const sel of [0, 1]) {
      this.set(0x024, sel);
      this.set(0x020, Number((accepted >> BigInt(32 * sel)) & 0xffff_ffffn));
    }
    this.set(0x070, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
    return accepted;
  }

  /** Lays out queue `index` with `size` entries (the layout is written to the registers, then QueueReady). */
  setupQueue(index: number, size: number): void {
    const q: QueueState = {
      size,
      desc: this.alloc(16 * size, 16),
      avail: this.alloc(6 + 2 * size, 2),
      used: this.alloc(6 + 8 * size, 4),
      nextDesc: 0,
      availIdx: 0,
      usedSeen: 0,
    };
    this.queues[index] = q;
    this.set(0x030, index);
    this.set(0x038, size);
    this.set(0x080, q.desc);
    this.set(0x084, 0);
    this.set(0x090, q.avail);
    this.set(0x094, 0);
    this.set(0x0a0, q.used);
    this.set(0x0a4, 0);
    this.set(0x044, 1);
  }

  /** The whole initialisation; every queue gets `size` entries. */
  init(opts: { drop?: bigint; size?: number } = {}): bigint {
    const accepted = this.negotiate(opts.drop);
    for (let i = 0; i < this.core.queueCount; i++) this.setupQueue(i, opts.size ?? 8);
    this.set(0x070, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK | STATUS.DRIVER_OK);
    return accepted;
  }

  private writeDesc(table: number, index: number, addr: number, len: number, flags: number, next: number): void {
    const at = table + 16 * index - RAM_BASE;
    const dv = this.ram.dv;
    dv.setUint32(at, addr % 0x1_0000_0000, true);
    dv.setUint32(at + 4, Math.floor(addr / 0x1_0000_0000), true);
    dv.setUint32(at + 8, len, true);
    dv.setUint16(at + 12, flags, true);
    dv.setUint16(at + 14, next, true);
  }

  /** Places a chain in queue `index` and makes it available (no kick); returns its head. */
  add(index: number, buffers: readonly Buffer[], opts: { indirect?: boolean } = {}): number {
    const q = this.queues[index]!;
    const addrs = buffers.map((b) => {
      if ('read' in b) {
        const at = this.alloc(b.read.length, 8);
        this.ram.write(at, b.read);
        return at;
      }
      return this.alloc(b.write, 8);
    });
    const head = q.nextDesc;
    let table = q.desc;
    let first = head;
    if (opts.indirect) {
      table = this.alloc(16 * buffers.length, 16);
      this.writeDesc(q.desc, head, table, 16 * buffers.length, DESC_F_INDIRECT, 0);
      q.nextDesc = (q.nextDesc + 1) % q.size;
      first = 0;
    }
    buffers.forEach((b, i) => {
      const slot = opts.indirect ? i : (first + i) % q.size;
      const last = i === buffers.length - 1;
      const next = opts.indirect ? i + 1 : (first + i + 1) % q.size;
      const flags = ('write' in b ? DESC_F_WRITE : 0) | (last ? 0 : DESC_F_NEXT);
      this.writeDesc(table, slot, addrs[i]!, 'read' in b ? b.read.length : b.write, flags, last ? 0 : next);
    });
    if (!opts.indirect) q.nextDesc = (q.nextDesc + buffers.length) % q.size;
    this.writable.set(`${index}:${head}`, buffers.flatMap((b, i) => ('write' in b ? [[addrs[i]!, b.write]] : [])));
    this.ram.dv.setUint16(q.avail + 4 + 2 * (q.availIdx % q.size) - RAM_BASE, head, true);
    q.availIdx = (q.availIdx + 1) & 0xffff;
    this.ram.dv.setUint16(q.avail + 2 - RAM_BASE, q.availIdx, true);
    return head;
  }

  kick(index: number): void {
    this.set(0x050, index);
  }

  /** Used entries since the last call: `data` is the `len` bytes the device wrote, `writable` the chain's whole writable part. */
  takeUsed(index: number): UsedEntry[] {
    const q = this.queues[index]!;
    const dv = this.ram.dv;
    const usedIdx = dv.getUint16(q.used + 2 - RAM_BASE, true);
    const out: UsedEntry[] = [];
    for (; q.usedSeen !== usedIdx; q.usedSeen = (q.usedSeen + 1) & 0xffff) {
      const at = q.used + 4 + 8 * (q.usedSeen % q.size) - RAM_BASE;
      const id = dv.getUint32(at, true);
      const len = dv.getUint32(at + 4, true);
      const parts = (this.writable.get(`${index}:${id}`) ?? []).map(([a, n]) => this.ram.view(a!, n!));
      const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let o = 0;
      for (const p of parts) {
        all.set(p, o);
        o += p.length;
      }
      out.push({ id, len, data: all.subarray(0, len), writable: all });
    }
    return out;
  }

  /** Sets the avail ring's used_event (EVENT_IDX) or flags word. */
  setUsedEvent(index: number, value: number): void {
    const q = this.queues[index]!;
    this.ram.dv.setUint16(q.avail + 4 + 2 * q.size - RAM_BASE, value, true);
  }

  setAvailFlags(index: number, value: number): void {
    this.ram.dv.setUint16(this.queues[index]!.avail - RAM_BASE, value, true);
  }

  availEvent(index: number): number {
    const q = this.queues[index]!;
    return this.ram.dv.getUint16(q.used + 4 + 8 * q.size - RAM_BASE, true);
  }

  /** Lets microtasks (interrupt decisions) and pending I/O run. */
  async settle(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
  }

  /** Acknowledges every interrupt status bit; returns the bits. */
  ack(): number {
    const bits = this.reg(0x060);
    this.set(0x064, bits);
    return bits;
  }

  descAddress(index: number, desc: number): number {
    return this.queues[index]!.desc + 16 * desc;
  }
}
