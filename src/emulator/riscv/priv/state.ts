/**
 * Views of one hart's state block in the machine's shared memory (layout.ts),
 * with the small accessors the privileged-architecture modules share.
 *
 * 64-bit values are handled as (lo, hi) pairs of 32-bit numbers, never as
 * BigInt: `lo(off)` reads the low word as an unsigned number, `hi(off)` the
 * high word as a signed one. Counters that need arithmetic (instret, mcycle,
 * time) go through doubles, exact below 2^53. The mip word is read with
 * Atomics because devices and other harts set its bits from other threads.
 *
 * resetHartState() puts a state block into its power-on state; it needs no
 * Hart object, so the machine can prepare harts from the main thread.
 */
import { HS, PRIV_M, hartStateBase, tlbBase, TLB_STRIDE } from '../layout.js';
import { CSR_OFF, MIP_SEIP, MSTATUS } from './csr-defs.js';

const TWO32 = 0x1_0000_0000;

export class HartState {
  readonly u8: Uint8Array;
  readonly dv: DataView;
  readonly i32: Int32Array;
  readonly base: number;

  constructor(readonly memory: WebAssembly.Memory, readonly id: number) {
    const buffer = memory.buffer;
    this.u8 = new Uint8Array(buffer);
    this.dv = new DataView(buffer);
    this.i32 = new Int32Array(buffer);
    this.base = hartStateBase(id);
  }

  /** Low word of the 8-byte slot at state offset `off`, unsigned. */
  lo(off: number): number {
    return this.dv.getUint32(this.base + off, true);
  }

  /** High word of the 8-byte slot at state offset `off`, signed. */
  hi(off: number): number {
    return this.dv.getInt32(this.base + off + 4, true);
  }

  set64(off: number, lo: number, hi: number): void {
    this.dv.setInt32(this.base + off, lo | 0, true);
    this.dv.setInt32(this.base + off + 4, hi | 0, true);
  }

  get32(off: number): number {
    return this.dv.getInt32(this.base + off, true);
  }

  set32(off: number, value: number): void {
    this.dv.setInt32(this.base + off, value | 0, true);
  }

  /** The 8-byte slot at `off` as a double (exact below 2^53; unsigned). */
  getDouble64(off: number): number {
    return this.lo(off) + (this.hi(off) >>> 0) * TWO32;
  }

  /** Stores an integral double as a 64-bit integer (negative values wrap modulo 2^64). */
  setDouble64(off: number, value: number): void {
    const hi = Math.floor(value / TWO32);
    this.set64(off, value - hi * TWO32, hi);
  }

  get priv(): number {
    return this.get32(HS.PRIV);
  }

  set priv(mode: number) {
    this.set32(HS.PRIV, mode);
  }

  get mstatus(): number {
    return this.get32(CSR_OFF.MSTATUS);
  }

  /** Writes the low word of mstatus; the high word keeps UXL/SXL and SD follows FS. */
  set mstatus(lo: number) {
    const sd = (lo & MSTATUS.FS) === MSTATUS.FS_DIRTY ? MSTATUS.HI_SD : 0;
    this.set64(CSR_OFF.MSTATUS, lo, MSTATUS.HI_XL | sd);
  }

  /** The mip CSR: the shared pending word (Atomics) plus the software SEIP bit. */
  mip(): number {
    return Atomics.load(this.i32, (this.base + HS.MIP) >> 2) | (this.get32(CSR_OFF.MIP_SW_SEIP) & MIP_SEIP);
  }

  /** Atomically sets (or clears) `bits` in the shared mip word. */
  setMipBits(bits: number, on: boolean): void {
    const index = (this.base + HS.MIP) >> 2;
    if (on) Atomics.or(this.i32, index, bits);
    else Atomics.and(this.i32, index, ~bits);
  }

  pcLo(): number {
    return this.lo(HS.PC);
  }

  pcHi(): number {
    return this.hi(HS.PC);
  }

  setPc(lo: number, hi: number): void {
    this.set64(HS.PC, lo, hi);
  }

  /** Adds a small positive delta to PC with carry into the high word. */
  advancePc(delta: number): void {
    const sum = this.lo(HS.PC) + delta;
    this.set64(HS.PC, sum, sum >= TWO32 ? this.hi(HS.PC) + 1 : this.hi(HS.PC));
  }
}

/** Puts hart `id`'s state block and TLB (every set empty, the first one current) into the power-on state, with PC = `pc` (a double) in M-mode. */
export function resetHartState(memory: WebAssembly.Memory, id: number, pc: number): void {
  const base = hartStateBase(id);
  new Uint8Array(memory.buffer, base, CSR_OFF.END).fill(0);
  new Int32Array(memory.buffer, tlbBase(id), TLB_STRIDE >> 2).fill(-1);
  const state = new HartState(memory, id);
  state.set32(HS.TLB_SET, tlbBase(id));
  state.priv = PRIV_M;
  state.mstatus = 0;
  state.setDouble64(HS.PC, pc);
  state.set64(HS.RESERVATION_ADDR, -1, -1);
}

/** Splits an integral double into 32-bit halves: out[0] = low word, out[1] = high word (wrapping modulo 2^64). */
export function doubleHalves(value: number, out: Int32Array): void {
  const hi = Math.floor(value / TWO32);
  out[0] = value - hi * TWO32;
  out[1] = hi;
}
