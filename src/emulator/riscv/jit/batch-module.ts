/**
 * One WebAssembly module holding a batch of translated blocks for one hart.
 *
 * Theory of operation. Compiling a module has a fixed cost (about 0.2 ms on
 * Node 20) that dwarfs the per-function cost, so the JIT translates blocks in
 * batches into one module. Every batch module has the same imports:
 *
 *   env.memory   the machine's shared memory (guest RAM, hart state, TLBs)
 *   env.leave    the hart hub's `leave` (hub.ts), which every block exit tail-calls
 *   env.load / env.store   HartServices.load/store (the slow path of the
 *                inline TLB): (vaLo, vaHi, size) → 1 ok / 0 trapped
 *   env.lr / env.sc        HartServices.loadReserved/storeConditional, same shape
 *   env.amo      HartServices.amo: (AMO_OPS index, vaLo, vaHi, size) → 1 / 0
 *   env.csr      the engine's CSR access (csr, kind, writes, insn, retired) → 1 / 0
 *                (retired: the block's instructions before it, for INSTRET)
 *   env.fpEnabled / env.fpDirty  HartServices.fpEnabled/fpDirty
 *   env.fp       the FPU's executor (fpu/execute.ts makeFpHelper):
 *                (op, rd, rs1, rs2, rs3, rm) → FP_CLEAN / FP_DIRTY / FP_ILLEGAL
 *
 * and a few internal functions: the M extension's awkward cases (high
 * multiplies, division with RISC-V's divide-by-zero and overflow results),
 * which wasm's own i64 ops either lack or trap on, stopAt (stores a pc into PC
 * and returns 0: a block entered for another host), and the slow paths of the
 * guest's loads and stores (missAccessors). A translated block does the
 * software-TLB lookup of each access inline (translate.ts); on a miss it
 * calls its access's accessor with the va and the instruction's pc, which
 * stores the pc into PC and calls env.load/env.store (value through
 * SCRATCH0). A load accessor returns (value, 1), or (0, 0) when the access
 * trapped; a store accessor returns 1, or 0. (Inline, the slow paths, rarely
 * taken, were a tenth of a kernel block's code.) Each translated block is a
 * function of type (pc: i64, host: i32) → i32 that the module exports under
 * its position in the batch (blockExportName); the code cache writes it into
 * the block's slot of the hub's table. The module imports no table (hub.ts
 * says why).
 */
import { MemOp, ModuleBuilder, Op, Type, type Code } from '../../wasm/encoder.js';
import type { AmoOp } from '../hart-api.js';
import { HS } from '../layout.js';
import { BLOCK_RESULTS, LEAVE_PARAMS, MAX_PAGES } from './hub.js';

/** AMO operations by the index translated code passes to env.amo. */
export const AMO_OPS: readonly AmoOp[] = ['swap', 'add', 'xor', 'and', 'or', 'min', 'max', 'minu', 'maxu'];

const { i32, i64 } = Type;

/** Function indices a block translator calls. */
export interface BatchFunctions {
  readonly load: number;
  readonly store: number;
  readonly lr: number;
  readonly sc: number;
  readonly amo: number;
  readonly csr: number;
  readonly fpEnabled: number;
  readonly fpDirty: number;
  readonly fp: number;
  readonly mulhu: number;
  readonly mulh: number;
  readonly mulhsu: number;
  readonly div: number;
  readonly divu: number;
  readonly rem: number;
  readonly remu: number;
  readonly leave: number;
  /** Load-miss accessors by access (see the header): (va: i64, pc: i64) → (value: i64, ok: i32). */
  readonly loadMisses: Readonly<Record<LoadKind, number>>;
  /** stopAt(pc: i64) → 0: stores pc into PC and returns 0, the way back to the dispatcher. */
  readonly stopAt: number;
  /** Store-miss accessors by size: (va: i64, value: i64, pc: i64) → ok: i32. */
  readonly storeMisses: Readonly<Record<1 | 2 | 4 | 8, number>>;
}

/** A load's size and extension: 'u1' is lbu, 's4' lw, '8' ld (and fld's raw bits, as 'u4' flw's). */
export type LoadKind = 's1' | 'u1' | 's2' | 'u2' | 's4' | 'u4' | '8';

/** Each load's size, its wasm load (translate.ts's hit path) and the extension of the value a miss reads. */
export const LOAD_KINDS: Readonly<Record<LoadKind, { size: number; op: number; ext: number }>> = {
  s1: { size: 1, op: MemOp.i64_load8_s, ext: Op.i64_extend8_s },
  u1: { size: 1, op: MemOp.i64_load8_u, ext: Op.nop },
  s2: { size: 2, op: MemOp.i64_load16_s, ext: Op.i64_extend16_s },
  u2: { size: 2, op: MemOp.i64_load16_u, ext: Op.nop },
  s4: { size: 4, op: MemOp.i64_load32_s, ext: Op.i64_extend32_s },
  u4: { size: 4, op: MemOp.i64_load32_u, ext: Op.nop },
  '8': { size: 8, op: MemOp.i64_load, ext: Op.nop },
};

export interface BatchModule {
  readonly builder: ModuleBuilder;
  readonly fns: BatchFunctions;
}

/** The export name of the k-th block of a batch. */
export function blockExportName(k: number): string {
  return String(k);
}

/** A new, empty batch module for the hart whose state block is at `stateBase`. */
export function newBatchModule(stateBase: number): BatchModule {
  const m = new ModuleBuilder();
  const load = m.importFunction('env', 'load', [i32, i32, i32], [i32]);
  const store = m.importFunction('env', 'store', [i32, i32, i32], [i32]);
  const lr = m.importFunction('env', 'lr', [i32, i32, i32], [i32]);
  const sc = m.importFunction('env', 'sc', [i32, i32, i32], [i32]);
  const amo = m.importFunction('env', 'amo', [i32, i32, i32, i32], [i32]);
  const csr = m.importFunction('env', 'csr', [i32, i32, i32, i32, i32], [i32]);
  const fpEnabled = m.importFunction('env', 'fpEnabled', [], [i32]);
  const fpDirty = m.importFunction('env', 'fpDirty', [], []);
  const fp = m.importFunction('env', 'fp', [i32, i32, i32, i32, i32, i32], [i32]);
  const leave = m.importFunction('env', 'leave', LEAVE_PARAMS, BLOCK_RESULTS);
  m.importMemory('env', 'memory', 1, MAX_PAGES, true);

  const mulhu = binary(m, emitMulhu);
  const mulh = binary(m, (c) => emitSignedHigh(c, mulhu, true));
  const mulhsu = binary(m, (c) => emitSignedHigh(c, mulhu, false));
  const div = binary(m, (c) => emitDivision(c, Op.i64_div_s, true));
  const divu = binary(m, (c) => emitDivision(c, Op.i64_div_u, false));
  const rem = binary(m, (c) => emitRemainder(c, Op.i64_rem_s, true));
  const remu = binary(m, (c) => emitRemainder(c, Op.i64_rem_u, false));
  const { loadMisses, storeMisses } = missAccessors(m, stateBase, load, store);
  const stop = m.func([i64], [i32]);
  stop.code.i32(0).get(0).mem(MemOp.i64_store, stateBase + HS.PC, 3).i32(0);
  return {
    builder: m,
    fns: { load, store, lr, sc, amo, csr, fpEnabled, fpDirty, fp, mulhu, mulh, mulhsu, div, divu, rem, remu, leave, loadMisses, storeMisses, stopAt: stop.index },
  };
}

/** The load- and store-miss accessors (see the header), calling `load`/`store` (env.load/env.store). */
function missAccessors(m: ModuleBuilder, stateBase: number, load: number, store: number): Pick<BatchFunctions, 'loadMisses' | 'storeMisses'> {
  const loadMisses = {} as Record<LoadKind, number>;
  for (const [kind, { size, ext }] of Object.entries(LOAD_KINDS) as [LoadKind, (typeof LOAD_KINDS)[LoadKind]][]) {
    const f = m.func([i64, i64], [i64, i32]);
    const c = f.code;
    emitSlowCall(c, stateBase, 1, load, size);
    c.if().i32(0).mem(MemOp.i64_load, stateBase + HS.SCRATCH0, 3);
    if (ext !== Op.nop) c.op(ext);
    c.i32(1).op(Op.return).end();
    c.i64(0).i32(0);
    loadMisses[kind] = f.index;
  }
  const storeMisses = {} as Record<1 | 2 | 4 | 8, number>;
  for (const size of [1, 2, 4, 8] as const) {
    const f = m.func([i64, i64, i64], [i32]);
    const c = f.code;
    c.i32(0).get(1).mem(MemOp.i64_store, stateBase + HS.SCRATCH0, 3);
    emitSlowCall(c, stateBase, 2, store, size);
    storeMisses[size] = f.index;
  }
  return { loadMisses, storeMisses };
}

/** Stores the pc in parameter `pc` into PC and calls `helper` (env.load/env.store) with the va in parameter 0's halves and `size`. */
function emitSlowCall(c: Code, stateBase: number, pc: number, helper: number, size: number): void {
  c.i32(0).get(pc).mem(MemOp.i64_store, stateBase + HS.PC, 3);
  c.get(0).op(Op.i32_wrap_i64).get(0).i64(32).op(Op.i64_shr_u).op(Op.i32_wrap_i64).i32(size).call(helper);
}

function binary(m: ModuleBuilder, body: (c: Code) => void): number {
  const f = m.func([i64, i64], [i64]);
  body(f.code);
  return f.index;
}

/** High 64 bits of the unsigned 128-bit product, from four 32×32 partial products. */
function emitMulhu(c: Code): void {
  const [aL, aH, bL, bH, lh, hl] = [c.local(i64), c.local(i64), c.local(i64), c.local(i64), c.local(i64), c.local(i64)];
  const low32 = (v: number) => c.get(v).i64(0xffffffff, 0).op(Op.i64_and);
  const high32 = (v: number) => c.get(v).i64(32).op(Op.i64_shr_u);
  c.get(0).i64(0xffffffff, 0).op(Op.i64_and).set(aL).get(0).i64(32).op(Op.i64_shr_u).set(aH);
  c.get(1).i64(0xffffffff, 0).op(Op.i64_and).set(bL).get(1).i64(32).op(Op.i64_shr_u).set(bH);
  c.get(aL).get(bH).op(Op.i64_mul).set(lh);
  c.get(aH).get(bL).op(Op.i64_mul).set(hl);
  // hh + (lh >> 32) + (hl >> 32) + (((ll >> 32) + low32(lh) + low32(hl)) >> 32)
  c.get(aH).get(bH).op(Op.i64_mul);
  high32(lh).op(Op.i64_add);
  high32(hl).op(Op.i64_add);
  c.get(aL).get(bL).op(Op.i64_mul).i64(32).op(Op.i64_shr_u);
  low32(lh).op(Op.i64_add);
  low32(hl).op(Op.i64_add);
  c.i64(32).op(Op.i64_shr_u).op(Op.i64_add);
}

/** mulh (both signed) or mulhsu (a signed): correct the unsigned high product by the operands' signs. */
function emitSignedHigh(c: Code, mulhu: number, bSigned: boolean): void {
  c.get(0).get(1).call(mulhu);
  c.get(1).i64(0).get(0).i64(0).op(Op.i64_lt_s).op(Op.select).op(Op.i64_sub);
  if (bSigned) c.get(0).i64(0).get(1).i64(0).op(Op.i64_lt_s).op(Op.select).op(Op.i64_sub);
}

/** a / b with b = 0 → all ones, and (signed) MIN / -1 → MIN. */
function emitDivision(c: Code, op: number, signed: boolean): void {
  c.get(1).op(Op.i64_eqz).if(i64).i64(-1);
  c.else();
  if (signed) {
    c.get(1).i64(-1).op(Op.i64_eq).get(0).i64(0, 0x80000000).op(Op.i64_eq).op(Op.i32_and);
    c.if(i64).get(0).else().get(0).get(1).op(op).end();
  } else {
    c.get(0).get(1).op(op);
  }
  c.end();
}

/** a % b with b = 0 → a, and (signed) MIN % -1 → 0. */
function emitRemainder(c: Code, op: number, signed: boolean): void {
  c.get(1).op(Op.i64_eqz).if(i64).get(0);
  c.else();
  if (signed) {
    c.get(1).i64(-1).op(Op.i64_eq).if(i64).i64(0).else().get(0).get(1).op(op).end();
  } else {
    c.get(0).get(1).op(op);
  }
  c.end();
}
