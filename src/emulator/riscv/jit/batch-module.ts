/**
 * One WebAssembly module holding a batch of translated blocks for one hart.
 *
 * Theory of operation. Compiling a module has a fixed cost (about 0.2 ms on
 * Node 20) that dwarfs the per-function cost, so the JIT translates blocks in
 * batches into one module. Every batch module has the same imports:
 *
 *   env.memory   the machine's shared memory (guest RAM, hart state, TLBs)
 *   env.table    the hart's table of block functions (the chaining slots)
 *   env.load / env.store   HartServices.load/store (the slow path of the
 *                inline TLB): (vaLo, vaHi, size) → 1 ok / 0 trapped
 *   env.lr / env.sc        HartServices.loadReserved/storeConditional, same shape
 *   env.amo      HartServices.amo: (AMO_OPS index, vaLo, vaHi, size) → 1 / 0
 *   env.fpEnabled / env.fpDirty  HartServices.fpEnabled/fpDirty
 *   env.fp       the FPU's executor (fpu/execute.ts makeFpHelper):
 *                (op, rd, rs1, rs2, rs3, rm) → FP_CLEAN / FP_DIRTY / FP_ILLEGAL
 *
 * and a few internal functions: for the M extension's awkward cases (high
 * multiplies, division with RISC-V's divide-by-zero and overflow results),
 * which wasm's own i64 ops either lack or trap on, and `leave`, where every
 * block exit goes (next: i64, nextHost: i32, slot: i32) → i32: if budget
 * remains (JIT_BUDGET) and EXIT_REQUEST is clear it tail-calls `slot` of the
 * block table (a constant same-page target) or, for SLOT_JUMP, translates
 * `next` through the fetch TLB and tail-calls the slot that the jump cache
 * (layout.ts TLB_JUMPS: slot numbers in memory, so filling it is a plain store
 * and no wasm table is shared by more modules than it must be) holds for its
 * host offset, unless that slot is null (no translation yet); otherwise it
 * stores `next` into PC and returns 0 to the dispatcher. SLOT_INTERPRET stores `next` and returns 1 (the engine interprets there). Each translated block is a
 * function of type (pc: i64, host: i32) → i32 that an element segment places into the
 * block's slot of env.table when the module is instantiated.
 */
import { MemOp, ModuleBuilder, Op, Type, type Code } from '../../wasm/encoder.js';
import { HS, JUMP_CACHE_SIZE, TLB_ENTRIES, TLB_FETCH, TLB_JUMPS } from '../layout.js';
import type { AmoOp } from '../hart-api.js';

/** AMO operations by the index translated code passes to env.amo. */
export const AMO_OPS: readonly AmoOp[] = ['swap', 'add', 'xor', 'and', 'or', 'min', 'max', 'minu', 'maxu'];

const { i32, i64 } = Type;

/** The JIT's budget word (layout.ts HS.JIT_BUDGET): instructions the hart may still run before returning to the dispatcher. */
export const JIT_BUDGET = HS.JIT_BUDGET;

export function jumpCacheIndex(host: number): number {
  return (host >>> 1) & (JUMP_CACHE_SIZE - 1);
}

/** `slot` arguments of `leave` that are not table slots. */
export const SLOT_JUMP = -1;
export const SLOT_INTERPRET = -3;

/** Function indices a block translator calls. */
export interface BatchFunctions {
  readonly load: number;
  readonly store: number;
  readonly lr: number;
  readonly sc: number;
  readonly amo: number;
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
  /** Type index of a block function, (pc: i64, host: i32) → i32, for call_indirect. */
  readonly blockType: number;
}

export interface BatchModule {
  readonly builder: ModuleBuilder;
  readonly fns: BatchFunctions;
}

/** The 4 GiB ceiling of a 32-bit memory, in pages: the import accepts any shared memory. */
const MAX_PAGES = 65536;

/**
 * A new batch module for the hart whose state block and TLBs are at
 * `stateBase` and `tlbBase`; `jumpCache` false makes jumps return to the
 * dispatcher.
 */
export function newBatchModule(stateBase: number, tlbBase: number, jumpCache: boolean): BatchModule {
  const m = new ModuleBuilder();
  const load = m.importFunction('env', 'load', [i32, i32, i32], [i32]);
  const store = m.importFunction('env', 'store', [i32, i32, i32], [i32]);
  const lr = m.importFunction('env', 'lr', [i32, i32, i32], [i32]);
  const sc = m.importFunction('env', 'sc', [i32, i32, i32], [i32]);
  const amo = m.importFunction('env', 'amo', [i32, i32, i32, i32], [i32]);
  const fpEnabled = m.importFunction('env', 'fpEnabled', [], [i32]);
  const fpDirty = m.importFunction('env', 'fpDirty', [], []);
  const fp = m.importFunction('env', 'fp', [i32, i32, i32, i32, i32, i32], [i32]);
  m.importMemory('env', 'memory', 1, MAX_PAGES, true);
  m.importTable('env', 'table', 1);
  const blockType = m.type([i64, i32], [i32]);

  const mulhu = binary(m, emitMulhu);
  const mulh = binary(m, (c) => emitSignedHigh(c, mulhu, true));
  const mulhsu = binary(m, (c) => emitSignedHigh(c, mulhu, false));
  const div = binary(m, (c) => emitDivision(c, Op.i64_div_s, true));
  const divu = binary(m, (c) => emitDivision(c, Op.i64_div_u, false));
  const rem = binary(m, (c) => emitRemainder(c, Op.i64_rem_s, true));
  const remu = binary(m, (c) => emitRemainder(c, Op.i64_rem_u, false));
  const leave = m.func([i64, i32, i32], [i32]);
  emitLeave(leave.code, blockType, stateBase, tlbBase, jumpCache);
  return {
    builder: m,
    fns: { load, store, lr, sc, amo, fpEnabled, fpDirty, fp, mulhu, mulh, mulhsu, div, divu, rem, remu, leave: leave.index, blockType },
  };
}

function emitLeave(c: Code, blockType: number, stateBase: number, tlbBase: number, jumpCache: boolean): void {
  const [next, host, slot] = [0, 1, 2];
  const pcAt = stateBase + HS.PC;
  c.get(slot).i32(SLOT_INTERPRET).op(Op.i32_eq).if();
  c.i32(0).get(next).mem(MemOp.i64_store, pcAt, 3).i32(1).op(Op.return);
  c.end();
  c.i32(0).mem(MemOp.i32_load, stateBase + JIT_BUDGET, 2).i32(0).op(Op.i32_gt_s);
  c.i32(0).mem(MemOp.i32_load, stateBase + HS.EXIT_REQUEST, 2).op(Op.i32_eqz).op(Op.i32_and);
  c.if();
  if (jumpCache) {
    // SLOT_JUMP: the slot the jump cache holds for next's host offset (a fetch-TLB miss leaves SLOT_JUMP).
    const fetchTlb = tlbBase + TLB_FETCH;
    const vpn = c.local(i64);
    const entry = c.local(i32);
    c.get(slot).i32(SLOT_JUMP).op(Op.i32_eq).if();
    c.get(next).i64(12).op(Op.i64_shr_u).tee(vpn);
    c.op(Op.i32_wrap_i64).i32(TLB_ENTRIES - 1).op(Op.i32_and).i32(4).op(Op.i32_shl).tee(entry);
    c.mem(MemOp.i64_load, fetchTlb, 3).get(vpn).op(Op.i64_eq);
    c.if();
    c.get(next).op(Op.i32_wrap_i64).get(entry).mem(MemOp.i32_load, fetchTlb + 8, 2).op(Op.i32_add).set(host);
    c.get(host).i32(1).op(Op.i32_shr_u).i32(JUMP_CACHE_SIZE - 1).op(Op.i32_and).i32(2).op(Op.i32_shl);
    c.mem(MemOp.i32_load, tlbBase + TLB_JUMPS, 2).set(slot);
    c.end();
    c.end();
  }
  // A slot with no translation yet holds null: return to the dispatcher instead.
  c.get(slot).i32(0).op(Op.i32_ge_s).if();
  c.get(slot).tableGet(0).refIsNull().op(Op.i32_eqz).if();
  c.get(next).get(host).get(slot).returnCallIndirect(blockType);
  c.end();
  c.end();
  c.end();
  c.i32(0).get(next).mem(MemOp.i64_store, pcAt, 3);
  c.i32(0);
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
