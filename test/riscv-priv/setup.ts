/**
 * A hart on a small machine for the privileged-architecture tests: shared
 * memory with RAM_BYTES of RAM, a recording MMIO bus with one 16-byte register
 * device at MMIO_BASE, a settable mtime, and BigInt conveniences (tests only)
 * for registers, CSRs, guest-physical memory and SCRATCH slots.
 */
import { Hart, type HartMmio } from '../../src/emulator/riscv/hart.js';
import type { MemSize } from '../../src/emulator/riscv/hart-api.js';
import { HS, RAM_GPA_BASE, RAM_HOST_BASE, TLB_ENTRY_SIZE, memoryPagesFor, tlbIndex } from '../../src/emulator/riscv/layout.js';
import { CSR_OFF } from '../../src/emulator/riscv/priv/csr-defs.js';
import { resetHartState } from '../../src/emulator/riscv/priv/state.js';

export const RAM_BYTES = 4 << 20;
export const MMIO_BASE = 0x1000_0000;
export const RAM = RAM_GPA_BASE;

/** A 16-byte register file at MMIO_BASE that records every access. */
export class TestMmio implements HartMmio {
  lo = 0;
  hi = 0;
  readonly regs = new DataView(new ArrayBuffer(16));
  readonly log: string[] = [];

  load(gpa: number, size: MemSize): boolean {
    const off = gpa - MMIO_BASE;
    if (off < 0 || off + size > 16 || off % size !== 0) return false;
    this.log.push(`r${size}@${off}`);
    this.lo = size === 1 ? this.regs.getUint8(off) : size === 2 ? this.regs.getUint16(off, true) : this.regs.getUint32(off, true);
    this.hi = size === 8 ? this.regs.getUint32(off + 4, true) : 0;
    return true;
  }

  store(gpa: number, size: MemSize, lo: number, hi: number): boolean {
    const off = gpa - MMIO_BASE;
    if (off < 0 || off + size > 16 || off % size !== 0) return false;
    this.log.push(`w${size}@${off}`);
    if (size === 1) this.regs.setUint8(off, lo);
    else if (size === 2) this.regs.setUint16(off, lo, true);
    else this.regs.setUint32(off, lo, true);
    if (size === 8) this.regs.setUint32(off + 4, hi, true);
    return true;
  }
}

export interface TestMachine {
  hart: Hart;
  memory: WebAssembly.Memory;
  dv: DataView;
  mmio: TestMmio;
  base: number;
  setMtime(ticks: number): void;
}

export function makeHart(options: { id?: number; sbi?: (hart: Hart) => boolean; memory?: WebAssembly.Memory } = {}): TestMachine {
  const id = options.id ?? 0;
  const pages = memoryPagesFor(RAM_BYTES);
  const memory = options.memory ?? new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  resetHartState(memory, id, RAM);
  let mtime = 0;
  const mmio = new TestMmio();
  const hart = new Hart({ memory, id, ramBytes: RAM_BYTES, readMtime: () => mtime, mmio, sbi: options.sbi });
  return {
    hart,
    memory,
    dv: new DataView(memory.buffer),
    mmio,
    base: hart.stateBase,
    setMtime: (ticks) => {
      mtime = ticks;
    },
  };
}

const host = (gpa: number) => gpa - RAM_GPA_BASE + RAM_HOST_BASE;

/** Byte offset of va's entry in `table` (TLB_LOAD, TLB_STORE, TLB_FETCH) of the hart's current TLB set. */
export function tlbEntry(m: TestMachine, table: number, va: number): number {
  return m.dv.getInt32(m.base + HS.TLB_SET, true) + table + tlbIndex(va) * TLB_ENTRY_SIZE;
}

export function writeU64(m: TestMachine, gpa: number, value: bigint): void {
  m.dv.setBigUint64(host(gpa), BigInt.asUintN(64, value), true);
}
export function readU64(m: TestMachine, gpa: number): bigint {
  return m.dv.getBigUint64(host(gpa), true);
}
export function writeU32(m: TestMachine, gpa: number, value: number): void {
  m.dv.setUint32(host(gpa), value, true);
}
export function readU8(m: TestMachine, gpa: number): number {
  return m.dv.getUint8(host(gpa));
}

export function slot(m: TestMachine, off: number): bigint {
  return m.dv.getBigUint64(m.base + off, true);
}
export function setSlot(m: TestMachine, off: number, value: bigint): void {
  m.dv.setBigUint64(m.base + off, BigInt.asUintN(64, value), true);
}
export const scratch0 = (m: TestMachine) => slot(m, HS.SCRATCH0);
export const setScratch0 = (m: TestMachine, value: bigint) => setSlot(m, HS.SCRATCH0, value);
export const pc = (m: TestMachine) => slot(m, HS.PC);
export const setPc = (m: TestMachine, value: bigint) => setSlot(m, HS.PC, value);
export const priv = (m: TestMachine) => m.dv.getInt32(m.base + HS.PRIV, true);

/** Splits a BigInt address into the (lo, hi) halves the hart API takes. */
export function halves(va: bigint): [number, number] {
  const u = BigInt.asUintN(64, va);
  return [Number(u & 0xffff_ffffn) | 0, Number(BigInt.asIntN(32, u >> 32n))];
}

export function load(m: TestMachine, va: bigint, size: MemSize): bigint | undefined {
  return m.hart.load(...halves(va), size) ? scratch0(m) : undefined;
}
export function store(m: TestMachine, va: bigint, size: MemSize, value: bigint): boolean {
  setScratch0(m, value);
  return m.hart.store(...halves(va), size);
}

/** csrrw/csrrs/csrrc: the old value, or undefined when the access trapped. */
export function csr(m: TestMachine, num: number, kind: 0 | 1 | 2, value = 0n, writes = true): bigint | undefined {
  setScratch0(m, value);
  return m.hart.csrAccess(num, kind, writes, 0x1234) ? scratch0(m) : undefined;
}
export const csrRead = (m: TestMachine, num: number) => csr(m, num, 1, 0n, false);
export const csrWrite = (m: TestMachine, num: number, value: bigint) => csr(m, num, 0, value);

export const mcause = (m: TestMachine) => slot(m, CSR_OFF.MCAUSE);
export const mtval = (m: TestMachine) => slot(m, CSR_OFF.MTVAL);
export const mepc = (m: TestMachine) => slot(m, CSR_OFF.MEPC);
export const scause = (m: TestMachine) => slot(m, CSR_OFF.SCAUSE);
export const stval = (m: TestMachine) => slot(m, CSR_OFF.STVAL);
export const mstatus = (m: TestMachine) => slot(m, CSR_OFF.MSTATUS);
/** Sets mstatus's low word directly (whatever the current privilege), keeping UXL/SXL. */
export const setMstatus = (m: TestMachine, low: number) => setSlot(m, CSR_OFF.MSTATUS, BigInt(low >>> 0) | (0xan << 32n));
