/**
 * A virtio-pci driver in miniature for the transport tests: a VirtioPci over a
 * FakeRam (test/virtio/fake-driver.ts), reached the way a guest reaches it:
 * configuration space reads and writes, the capability list walked from 0x34,
 * and BAR accesses at the offsets the capabilities give. It negotiates
 * (status steps, feature words), lays out queues in the fake RAM through the
 * common configuration, makes chains available and notifies through the
 * queue's notify address, and reads the used ring.
 */
import type { AccessSize } from '../../src/emulator/bus/interfaces.js';
import type { VirtioDevice } from '../../src/emulator/virtio/device.js';
import { DESC_F_NEXT, DESC_F_WRITE, STATUS } from '../../src/emulator/virtio/spec.js';
import { VirtioPci } from '../../src/emulator/virtio-pci/function.js';
import { FakeRam, RAM_BASE } from '../virtio/fake-driver.js';

export const BAR_BASE = 0xe000_0000;
export const IRQ = 10;

/** Common configuration offsets (virtio 1.1). */
export const COMMON = {
  DFSELECT: 0x00, DF: 0x04, GFSELECT: 0x08, GF: 0x0c, MSIX: 0x10, NUMQ: 0x12, STATUS: 0x14, GENERATION: 0x15,
  QSELECT: 0x16, QSIZE: 0x18, QMSIX: 0x1a, QENABLE: 0x1c, QNOTIFYOFF: 0x1e, QDESC: 0x20, QDRIVER: 0x28, QDEVICE: 0x30,
} as const;

export interface Capability {
  at: number;
  type: number;
  bar: number;
  offset: number;
  length: number;
  multiplier?: number;
}

export type Buffer = { read: Uint8Array } | { write: number };

interface Queue {
  size: number;
  desc: number;
  avail: number;
  used: number;
  notify: number;
  availIdx: number;
  usedSeen: number;
  writable: Map<number, [number, number][]>;
}

export class PciTestDriver {
  readonly ram = new FakeRam();
  readonly lines: string[] = [];
  irq = false;
  readonly pci: VirtioPci;
  private heap = RAM_BASE + 0x1000;
  private readonly queues: Queue[] = [];

  constructor(device: VirtioDevice) {
    this.pci = new VirtioPci(device, {
      ram: this.ram,
      irq: { set: (level) => (this.irq = level) },
      irqNumber: IRQ,
      barBase: BAR_BASE,
      location: 'virtio-pci@00:01.0',
      log: (line) => this.lines.push(line),
    });
  }

  cfg(offset: number, size: AccessSize = 4): number {
    return this.pci.configRead(offset, size);
  }

  setCfg(offset: number, size: AccessSize, value: number): void {
    this.pci.configWrite(offset, size, value);
  }

  capabilities(): Capability[] {
    const caps: Capability[] = [];
    for (let at = this.cfg(0x34, 1); at !== 0; at = this.cfg(at + 1, 1)) {
      const type = this.cfg(at + 3, 1);
      caps.push({
        at, type, bar: this.cfg(at + 4, 1), offset: this.cfg(at + 8), length: this.cfg(at + 12),
        ...(type === 2 ? { multiplier: this.cfg(at + 16) } : {}),
      });
    }
    return caps;
  }

  /** The BAR offset of the capability of `type`. */
  region(type: number): number {
    const cap = this.capabilities().find((c) => c.type === type);
    if (!cap) throw new Error(`no capability of type ${type}`);
    return cap.offset;
  }

  /** Reads the BAR at guest-physical `address` (through the window the BAR decodes now). */
  mmio(address: number, size: AccessSize): number {
    const w = this.pci.window();
    if (!w || address < w.base || address >= w.base + w.size) throw new Error(`0x${address.toString(16)} is not decoded`);
    return w.device.read(address - w.base, size);
  }

  setMmio(address: number, size: AccessSize, value: number): void {
    const w = this.pci.window();
    if (!w || address < w.base || address >= w.base + w.size) throw new Error(`0x${address.toString(16)} is not decoded`);
    w.device.write(address - w.base, size, value);
  }

  common(offset: number, size: AccessSize): number {
    return this.mmio(BAR_BASE + this.region(1) + offset, size);
  }

  setCommon(offset: number, size: AccessSize, value: number): void {
    this.setMmio(BAR_BASE + this.region(1) + offset, size, value);
  }

  readIsr(): number {
    return this.mmio(BAR_BASE + this.region(3), 1);
  }

  /** Reset, ACKNOWLEDGE, DRIVER, feature words; sets FEATURES_OK and returns whether the device kept it. */
  negotiate(accept: (offered: bigint) => bigint = (o) => o): boolean {
    this.setCommon(COMMON.STATUS, 1, 0);
    this.setCommon(COMMON.STATUS, 1, STATUS.ACKNOWLEDGE | STATUS.DRIVER);
    let offered = 0n;
    for (const sel of [0, 1]) {
      this.setCommon(COMMON.DFSELECT, 4, sel);
      offered |= BigInt(this.common(COMMON.DF, 4) >>> 0) << BigInt(32 * sel);
    }
    const accepted = accept(offered);
    for (const sel of [0, 1]) {
      this.setCommon(COMMON.GFSELECT, 4, sel);
      this.setCommon(COMMON.GF, 4, Number((accepted >> BigInt(32 * sel)) & 0xffff_ffffn));
    }
    this.setCommon(COMMON.STATUS, 1, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
    return (this.common(COMMON.STATUS, 1) & STATUS.FEATURES_OK) !== 0;
  }

  private alloc(bytes: number, align: number): number {
    this.heap = Math.ceil(this.heap / align) * align;
    const at = this.heap;
    this.heap += bytes;
    return at;
  }

  /** Lays out queue `index` with `size` entries through the common configuration and enables it. */
  setupQueue(index: number, size: number): void {
    const q: Queue = {
      size, desc: this.alloc(16 * size, 16), avail: this.alloc(6 + 2 * size, 2), used: this.alloc(6 + 8 * size, 4),
      notify: 0, availIdx: 0, usedSeen: 0, writable: new Map(),
    };
    this.setCommon(COMMON.QSELECT, 2, index);
    this.setCommon(COMMON.QSIZE, 2, size);
    for (const [offset, address] of [[COMMON.QDESC, q.desc], [COMMON.QDRIVER, q.avail], [COMMON.QDEVICE, q.used]] as const) {
      this.setCommon(offset, 4, address % 0x1_0000_0000);
      this.setCommon(offset + 4, 4, Math.floor(address / 0x1_0000_0000));
    }
    this.setCommon(COMMON.QENABLE, 2, 1);
    const notifyCap = this.capabilities().find((c) => c.type === 2)!;
    q.notify = BAR_BASE + notifyCap.offset + this.common(COMMON.QNOTIFYOFF, 2) * notifyCap.multiplier!;
    this.queues[index] = q;
  }

  /** The whole initialisation with VERSION_1 and the rest offered; every queue gets `size` entries. */
  init(size = 8): void {
    if (!this.negotiate()) throw new Error('FEATURES_OK refused');
    const queues = this.common(COMMON.NUMQ, 2);
    for (let i = 0; i < queues; i++) this.setupQueue(i, size);
    this.setCommon(COMMON.STATUS, 1, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK | STATUS.DRIVER_OK);
  }

  /** Places a chain (direct descriptors) in queue `index`, makes it available and notifies; returns its head. */
  submit(index: number, buffers: readonly Buffer[]): number {
    const q = this.queues[index]!;
    const dv = this.ram.dv;
    const head = (q.availIdx * buffers.length) % q.size;
    const writable: [number, number][] = [];
    buffers.forEach((b, i) => {
      const length = 'read' in b ? b.read.length : b.write;
      const addr = this.alloc(length, 8);
      if ('read' in b) this.ram.write(addr, b.read);
      else writable.push([addr, length]);
      const at = q.desc + 16 * ((head + i) % q.size) - RAM_BASE;
      const last = i === buffers.length - 1;
      dv.setUint32(at, addr % 0x1_0000_0000, true);
      dv.setUint32(at + 4, Math.floor(addr / 0x1_0000_0000), true);
      dv.setUint32(at + 8, length, true);
      dv.setUint16(at + 12, ('write' in b ? DESC_F_WRITE : 0) | (last ? 0 : DESC_F_NEXT), true);
      dv.setUint16(at + 14, last ? 0 : (head + i + 1) % q.size, true);
    });
    q.writable.set(head, writable);
    dv.setUint16(q.avail + 4 + 2 * (q.availIdx % q.size) - RAM_BASE, head, true);
    q.availIdx = (q.availIdx + 1) & 0xffff;
    dv.setUint16(q.avail + 2 - RAM_BASE, q.availIdx, true);
    this.setMmio(q.notify, 2, index);
    return head;
  }

  /** Used entries since the last call, each with its writable bytes (as the device left them). */
  takeUsed(index: number): { id: number; len: number; data: Uint8Array }[] {
    const q = this.queues[index]!;
    const dv = this.ram.dv;
    const out: { id: number; len: number; data: Uint8Array }[] = [];
    for (const usedIdx = dv.getUint16(q.used + 2 - RAM_BASE, true); q.usedSeen !== usedIdx; q.usedSeen = (q.usedSeen + 1) & 0xffff) {
      const at = q.used + 4 + 8 * (q.usedSeen % q.size) - RAM_BASE;
      const id = dv.getUint32(at, true);
      const parts = (q.writable.get(id) ?? []).map(([a, n]) => this.ram.view(a, n));
      out.push({ id, len: dv.getUint32(at + 4, true), data: Buffer.concat(parts) });
    }
    return out;
  }

  /** Lets microtasks (interrupt decisions) and pending I/O run. */
  async settle(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
  }
}
