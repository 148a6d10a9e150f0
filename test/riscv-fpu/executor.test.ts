/**
 * The FP executor's contract with the engines: reserved rounding modes are
 * illegal and change nothing, the status says whether FP state was written,
 * flags accumulate into fflags, x0 stays zero, NaN boxing on reads and writes,
 * and the all-i32 helper for translated code works over a shared
 * WebAssembly.Memory.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { executeFp, FP_CLEAN, FP_DIRTY, FP_ILLEGAL, makeFpHelper } from '../../src/emulator/riscv/fpu/execute.js';
import { OP } from '../../src/emulator/riscv/isa/table.js';
import { HS, hartStateBase, memoryPagesFor } from '../../src/emulator/riscv/layout.js';

const STATE = hartStateBase(1);
const DYN = 7;

function freshState(): { mem: Int32Array; f64: Float64Array } {
  const buffer = new ArrayBuffer(STATE + 0x1000);
  return { mem: new Int32Array(buffer), f64: new Float64Array(buffer) };
}

const fIndex = (r: number): number => (STATE + HS.F) / 4 + 2 * r;
const xIndex = (r: number): number => (STATE + HS.X) / 4 + 2 * r;
const FFLAGS = (STATE + HS.FFLAGS) / 4;
const FRM = (STATE + HS.FRM) / 4;

test('reserved rounding modes are illegal instructions and change nothing', () => {
  const { mem, f64 } = freshState();
  f64[fIndex(1) / 2] = 1;
  f64[fIndex(2) / 2] = 3;
  const before = mem.slice();
  for (const rm of [5, 6]) {
    assert.equal(executeFp(mem, STATE, OP['fdiv.d'], 3, 1, 2, 0, rm), FP_ILLEGAL);
    assert.equal(executeFp(mem, STATE, OP['fcvt.d.s'], 3, 1, 0, 0, rm), FP_ILLEGAL);
  }
  for (const frm of [5, 6, 7]) {
    mem[FRM] = frm;
    before[FRM] = frm;
    assert.equal(executeFp(mem, STATE, OP['fdiv.d'], 3, 1, 2, 0, DYN), FP_ILLEGAL);
    assert.equal(executeFp(mem, STATE, OP['fcvt.d.s'], 3, 1, 0, 0, DYN), FP_ILLEGAL);
    assert.equal(executeFp(mem, STATE, OP['fcvt.d.w'], 3, 1, 0, 0, DYN), FP_ILLEGAL);
    assert.deepEqual(mem, before);
  }
  // With a static mode, frm does not matter; instructions without a rounding mode ignore the field.
  assert.equal(executeFp(mem, STATE, OP['fdiv.d'], 3, 1, 2, 0, 1), FP_DIRTY);
  assert.equal(f64[fIndex(3) / 2], 0.3333333333333333);
  assert.equal(executeFp(mem, STATE, OP['fsgnjx.d'], 3, 1, 2, 0, 2), FP_DIRTY);
});

test('non-FP opcodes are refused', () => {
  const { mem } = freshState();
  assert.equal(executeFp(mem, STATE, OP.add, 1, 2, 3, 0, 0), FP_ILLEGAL);
  assert.equal(executeFp(mem, STATE, OP.fld, 1, 2, 3, 0, 0), FP_ILLEGAL);
});

test('status tells whether FP state was written; flags accumulate', () => {
  const { mem, f64 } = freshState();
  f64[fIndex(1) / 2] = 1;
  f64[fIndex(2) / 2] = 2;
  assert.equal(executeFp(mem, STATE, OP['feq.d'], 5, 1, 2, 0, 0), FP_CLEAN);
  assert.equal(executeFp(mem, STATE, OP['fmv.x.d'], 5, 1, 0, 0, 0), FP_CLEAN);
  assert.equal(mem[xIndex(5)], 0);
  assert.equal(mem[xIndex(5) + 1], 0x3ff00000);
  mem[FFLAGS] = 0x10;
  assert.equal(executeFp(mem, STATE, OP['fdiv.d'], 3, 1, 0, 0, 0), FP_DIRTY); // 1 / +0: DZ
  assert.equal(mem[FFLAGS], 0x18);
  // A quiet comparison with a signaling NaN writes only x and fflags: dirty because of fflags.
  mem[FFLAGS] = 0;
  mem[fIndex(4)] = 1;
  mem[fIndex(4) + 1] = 0x7ff00000;
  assert.equal(executeFp(mem, STATE, OP['feq.d'], 5, 4, 1, 0, 0), FP_DIRTY);
  assert.equal(mem[FFLAGS], 0x10);
  assert.equal(mem[xIndex(5)], 0);
});

test('x0 is never written', () => {
  const { mem, f64 } = freshState();
  f64[fIndex(1) / 2] = -7.5;
  assert.equal(executeFp(mem, STATE, OP['fcvt.l.d'], 0, 1, 0, 0, 0), FP_DIRTY); // inexact: NX
  assert.equal(mem[xIndex(0)], 0);
  assert.equal(mem[xIndex(0) + 1], 0);
  assert.equal(executeFp(mem, STATE, OP['fcvt.l.d'], 6, 1, 0, 0, 0), FP_DIRTY);
  assert.deepEqual([mem[xIndex(6)], mem[xIndex(6) + 1]], [-8, -1]);
});

test('NaN boxing: unboxed singles read as the canonical NaN; single results are boxed', () => {
  const { mem } = freshState();
  mem[fIndex(1)] = 0x3f800000; // 1.0f, but the upper half is not all ones
  mem[fIndex(1) + 1] = 0;
  mem[fIndex(2)] = 0x3f800000;
  mem[fIndex(2) + 1] = -1;
  assert.equal(executeFp(mem, STATE, OP['fadd.s'], 3, 1, 2, 0, 0), FP_DIRTY);
  assert.deepEqual([mem[fIndex(3)], mem[fIndex(3) + 1]], [0x7fc00000, -1]);
  assert.equal(executeFp(mem, STATE, OP['fadd.s'], 3, 2, 2, 0, 0), FP_DIRTY);
  assert.deepEqual([mem[fIndex(3)], mem[fIndex(3) + 1]], [0x40000000, -1]);
  // fmv.x.w moves the raw low half, sign-extended, boxed or not.
  mem[fIndex(1)] = 0x80000001;
  assert.equal(executeFp(mem, STATE, OP['fmv.x.w'], 7, 1, 0, 0, 0), FP_CLEAN);
  assert.deepEqual([mem[xIndex(7)], mem[xIndex(7) + 1]], [0x80000001 | 0, -1]);
  // fclass of an unboxed single: quiet NaN.
  assert.equal(executeFp(mem, STATE, OP['fclass.s'], 7, 1, 0, 0, 0), FP_CLEAN);
  assert.deepEqual([mem[xIndex(7)], mem[xIndex(7) + 1]], [1 << 9, 0]);
});

test('the i32 helper for translated code runs over a shared WebAssembly.Memory', () => {
  const pages = memoryPagesFor(1 << 20);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const state = hartStateBase(0);
  const f64 = new Float64Array(memory.buffer);
  const i32 = new Int32Array(memory.buffer);
  f64[(state + HS.F) / 8 + 1] = 2;
  f64[(state + HS.F) / 8 + 2] = 3;
  f64[(state + HS.F) / 8 + 3] = 0.25;
  i32[(state + HS.FRM) / 4] = 2; // RDN
  const helper = makeFpHelper(memory, state);
  assert.equal(helper(OP['fmadd.d'], 4, 1, 2, 3, DYN), FP_DIRTY);
  assert.equal(f64[(state + HS.F) / 8 + 4], 6.25);
  assert.equal(helper(OP['fsqrt.d'], 5, 1, 0, 0, DYN), FP_DIRTY);
  assert.equal(f64[(state + HS.F) / 8 + 5], 1.414213562373095); // rounded down: one below Math.SQRT2
  assert.equal(i32[(state + HS.FFLAGS) / 4], 1);
  // The interpreter's own view of the same memory, alternating with the helper, sees the same registers.
  assert.equal(executeFp(i32, state, OP['fadd.d'], 6, 4, 5, 0, 0), FP_DIRTY);
  assert.equal(f64[(state + HS.F) / 8 + 6], 6.25 + 1.414213562373095);
  assert.equal(helper(OP['fsub.d'], 7, 6, 4, 0, 0), FP_DIRTY);
  assert.equal(f64[(state + HS.F) / 8 + 7], 1.414213562373095);
});
