/**
 * Interpreter handlers for memory instructions: integer and FP loads and
 * stores, LR/SC and AMOs.
 *
 * Fast path: a naturally aligned access whose page is in the hart's load (or
 * store) TLB (layout.ts) reads or writes the shared memory directly at
 * wrap32(va) + addend. Everything else (a TLB miss, a misaligned access, MMIO,
 * a fault) goes through HartServices.load/store with the data in SCRATCH0;
 * those fill the TLB for RAM pages. Atomics always go through HartServices,
 * which makes them atomic across vCPU threads. FP loads and stores first check
 * that FP is enabled (illegal instruction otherwise), move raw bits (flw
 * NaN-boxes), and mark the FP state dirty after a load.
 */
import type { Insn } from '../isa/decode.js';
import type { Mnemonic } from '../isa/table.js';
import type { AmoOp, MemSize } from '../hart-api.js';
import { TLB_LOAD, TLB_STORE } from '../layout.js';
import { type Core, type Handler, NEXT, TRAP } from './core.js';
import { R, add64 } from './int64.js';

/** Host address of an aligned access at (lo, hi) through `table` (TLB_LOAD, TLB_STORE) of the current TLB set, or -1 on a miss. */
function lookup(c: Core, table: number, lo: number, hi: number, size: number): number {
  if ((lo & (size - 1)) !== 0) return -1;
  const vpnLo = (lo >>> 12) | (hi << 20);
  const w = c.tlbEntry(table, lo);
  const m = c.m;
  if (m[w] !== vpnLo || m[w + 1] !== hi >>> 12) return -1;
  return (lo + m[w + 2]!) >>> 0;
}

/** Computes rs1 + imm into R (the effective address). */
function address(c: Core, d: Insn): void {
  add64(c.lo(d.rs1), c.hi(d.rs1), d.imm, d.imm >> 31);
}

/**
 * Loads `size` bytes at rs1 + imm into R (zero-extended; `signed` sign-extends
 * from the access width). False: the hart trapped.
 */
function load(c: Core, d: Insn, size: MemSize, signed: boolean): boolean {
  address(c, d);
  const lo = R.lo;
  const hi = R.hi;
  const host = lookup(c, TLB_LOAD, lo, hi, size);
  if (host >= 0) {
    switch (size) {
      case 1: R.lo = signed ? c.i8[host]! : c.u8[host]!; break;
      case 2: R.lo = signed ? c.i16[host >>> 1]! : c.u16[host >>> 1]!; break;
      case 4: R.lo = c.m[host >>> 2]!; break;
      default: R.lo = c.m[host >>> 2]!; R.hi = c.m[(host >>> 2) + 1]!; return true;
    }
  } else {
    c.syncPc();
    if (!c.hart.load(lo, hi, size)) return false;
    R.lo = c.m[c.scratchw]!;
    if (size === 8) {
      R.hi = c.m[c.scratchw + 1]!;
      return true;
    }
    if (signed && size < 4) R.lo = size === 1 ? (R.lo << 24) >> 24 : (R.lo << 16) >> 16;
  }
  R.hi = signed ? R.lo >> 31 : 0;
  return true;
}

/** Stores the low `size` bytes of (lo, hi) at rs1 + imm. False: the hart trapped. */
function store(c: Core, d: Insn, size: MemSize, vlo: number, vhi: number): boolean {
  address(c, d);
  const host = lookup(c, TLB_STORE, R.lo, R.hi, size);
  if (host >= 0) {
    switch (size) {
      case 1: c.u8[host] = vlo; break;
      case 2: c.u16[host >>> 1] = vlo; break;
      case 4: c.m[host >>> 2] = vlo; break;
      default: c.m[host >>> 2] = vlo; c.m[(host >>> 2) + 1] = vhi;
    }
    return true;
  }
  c.syncPc();
  c.m[c.scratchw] = vlo;
  c.m[c.scratchw + 1] = vhi;
  return c.hart.store(R.lo, R.hi, size);
}

function loadHandler(size: MemSize, signed: boolean): Handler {
  return (c, d) => {
    if (!load(c, d, size, signed)) return TRAP;
    c.set(d.rd, R.lo, R.hi);
    return NEXT;
  };
}

function storeHandler(size: MemSize): Handler {
  return (c, d) => (store(c, d, size, c.lo(d.rs2), c.hi(d.rs2)) ? NEXT : TRAP);
}

function fpLoad(size: 4 | 8): Handler {
  return (c, d) => {
    if (!c.hart.fpEnabled()) return c.illegal(d.raw);
    if (!load(c, d, size, false)) return TRAP;
    const i = c.fb + 2 * d.rd;
    c.m[i] = R.lo;
    c.m[i + 1] = size === 4 ? -1 : R.hi; // NaN-boxing
    c.hart.fpDirty();
    return NEXT;
  };
}

function fpStore(size: 4 | 8): Handler {
  return (c, d) => {
    if (!c.hart.fpEnabled()) return c.illegal(d.raw);
    const i = c.fb + 2 * d.rs2;
    return store(c, d, size, c.m[i]!, c.m[i + 1]!) ? NEXT : TRAP;
  };
}

/** Moves the 64-bit value in SCRATCH0 (or SCRATCH1 for sc) to rd. */
function scratchToRd(c: Core, rd: number, slot: number): void {
  const w = c.scratchw + 2 * slot;
  c.set(rd, c.m[w]!, c.m[w + 1]!);
}

function rs2ToScratch(c: Core, d: Insn): void {
  c.m[c.scratchw] = c.lo(d.rs2);
  c.m[c.scratchw + 1] = c.hi(d.rs2);
}

function loadReserved(size: 4 | 8): Handler {
  return (c, d) => {
    c.syncPc();
    if (!c.hart.loadReserved(c.lo(d.rs1), c.hi(d.rs1), size)) return TRAP;
    scratchToRd(c, d.rd, 0);
    return NEXT;
  };
}

function storeConditional(size: 4 | 8): Handler {
  return (c, d) => {
    c.syncPc();
    rs2ToScratch(c, d);
    if (!c.hart.storeConditional(c.lo(d.rs1), c.hi(d.rs1), size)) return TRAP;
    scratchToRd(c, d.rd, 1);
    return NEXT;
  };
}

function amo(op: AmoOp, size: 4 | 8): Handler {
  return (c, d) => {
    c.syncPc();
    rs2ToScratch(c, d);
    if (!c.hart.amo(op, c.lo(d.rs1), c.hi(d.rs1), size)) return TRAP;
    scratchToRd(c, d.rd, 0);
    return NEXT;
  };
}

const AMO_OPS: readonly AmoOp[] = ['swap', 'add', 'xor', 'and', 'or', 'min', 'max', 'minu', 'maxu'];

function atomicHandlers(): Partial<Record<Mnemonic, Handler>> {
  const out: Partial<Record<string, Handler>> = {
    'lr.w': loadReserved(4),
    'lr.d': loadReserved(8),
    'sc.w': storeConditional(4),
    'sc.d': storeConditional(8),
  };
  for (const op of AMO_OPS) {
    out[`amo${op}.w`] = amo(op, 4);
    out[`amo${op}.d`] = amo(op, 8);
  }
  return out;
}

export const MEMORY_HANDLERS: Partial<Record<Mnemonic, Handler>> = {
  lb: loadHandler(1, true),
  lh: loadHandler(2, true),
  lw: loadHandler(4, true),
  ld: loadHandler(8, true),
  lbu: loadHandler(1, false),
  lhu: loadHandler(2, false),
  lwu: loadHandler(4, false),
  sb: storeHandler(1),
  sh: storeHandler(2),
  sw: storeHandler(4),
  sd: storeHandler(8),
  flw: fpLoad(4),
  fld: fpLoad(8),
  fsw: fpStore(4),
  fsd: fpStore(8),
  ...atomicHandlers(),
};
