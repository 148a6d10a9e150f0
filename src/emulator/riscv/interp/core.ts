/**
 * The interpreter's view of one hart: typed-array views over the machine's
 * shared memory, the word indices of the hart's state block and TLBs, and the
 * pc of the instruction being executed. Instruction handlers (alu.ts,
 * memory.ts, system.ts) take a Core and a decoded Insn and return a status:
 *
 *   NEXT  done; the next instruction follows (pc + len)
 *   JUMP  done; the next pc is in nextLo/nextHi; the block ends
 *   END   done; the block ends after it (pc + len), e.g. after a CSR access
 *   TRAP  the hart took a trap (PC already points at the handler); nothing
 *         was written and the instruction does not retire; the block ends
 *   STOP  done; the next pc is pc + len and the engine must return to the
 *         vCPU loop (wfi)
 * The engine, not the handler, writes PC for NEXT, JUMP, END and STOP.
 *
 * Before a call into HartServices that can trap, a handler stores the
 * instruction's pc into PC (syncPc), so the trap's epc is right.
 */
import type { HartServices } from '../hart-api.js';
import type { Insn } from '../isa/decode.js';
import { HS, TLB_ENTRY_SIZE, tlbIndex } from '../layout.js';

export type Handler = (c: Core, d: Insn) => number;

export const NEXT = 0;
export const JUMP = 1;
export const END = 2;
export const TRAP = 3;
export const STOP = 4;

/** Exception causes the interpreter raises itself (privileged spec, mcause). */
const CAUSE_ILLEGAL_INSTRUCTION = 2;

export class Core {
  readonly m: Int32Array;
  readonly u8: Uint8Array;
  readonly i8: Int8Array;
  readonly u16: Uint16Array;
  readonly i16: Int16Array;
  /** Word index of x0's low half; x[r] is at xb + 2r (lo) and xb + 2r + 1 (hi). */
  readonly xb: number;
  /** Word index of f0's low half. */
  readonly fb: number;
  readonly pcw: number;
  readonly scratchw: number;
  readonly instretw: number;
  readonly exitw: number;
  /** Word index of the TLB_SET word (the current TLB set's offset). */
  readonly tlbSetw: number;
  /** pc of the instruction being executed. */
  pcLo = 0;
  pcHi = 0;
  /** Next pc after a JUMP. */
  nextLo = 0;
  nextHi = 0;

  constructor(readonly hart: HartServices) {
    const buf = hart.memory.buffer;
    this.m = new Int32Array(buf);
    this.u8 = new Uint8Array(buf);
    this.i8 = new Int8Array(buf);
    this.u16 = new Uint16Array(buf);
    this.i16 = new Int16Array(buf);
    const sw = hart.stateBase >> 2;
    this.xb = sw + (HS.X >> 2);
    this.fb = sw + (HS.F >> 2);
    this.pcw = sw + (HS.PC >> 2);
    this.scratchw = sw + (HS.SCRATCH0 >> 2);
    this.instretw = sw + (HS.INSTRET >> 2);
    this.exitw = sw + (HS.EXIT_REQUEST >> 2);
    this.tlbSetw = sw + (HS.TLB_SET >> 2);
  }

  /** Word index of the entry for va (low word `lo`) in `table` (TLB_LOAD, TLB_STORE, TLB_FETCH) of the current TLB set. */
  tlbEntry(table: number, lo: number): number {
    return (this.m[this.tlbSetw]! + table + tlbIndex(lo) * TLB_ENTRY_SIZE) >> 2;
  }

  lo(r: number): number {
    return this.m[this.xb + 2 * r]!;
  }

  hi(r: number): number {
    return this.m[this.xb + 2 * r + 1]!;
  }

  set(rd: number, lo: number, hi: number): void {
    if (rd !== 0) {
      const i = this.xb + 2 * rd;
      this.m[i] = lo;
      this.m[i + 1] = hi;
    }
  }

  /** Writes a sign-extended 32-bit result. */
  setW(rd: number, v: number): void {
    this.set(rd, v, v >> 31);
  }

  /** Stores the current instruction's pc into PC (before a call that may trap). */
  syncPc(): void {
    this.m[this.pcw] = this.pcLo;
    this.m[this.pcw + 1] = this.pcHi;
  }

  /** Adds n to the INSTRET counter (64-bit). */
  retire(n: number): void {
    const m = this.m;
    const w = this.instretw;
    const lo = (m[w]! + n) | 0;
    if (lo >>> 0 < m[w]! >>> 0) m[w + 1] = (m[w + 1]! + 1) | 0;
    m[w] = lo;
  }

  illegal(raw: number): number {
    this.syncPc();
    this.hart.raiseException(CAUSE_ILLEGAL_INSTRUCTION, raw, 0);
    return TRAP;
  }
}
