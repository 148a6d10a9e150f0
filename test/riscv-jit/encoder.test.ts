import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteWriter, MemOp, ModuleBuilder, Op, Type } from '../../src/emulator/wasm/encoder.js';

function instantiate(m: ModuleBuilder, imports: WebAssembly.Imports = {}): WebAssembly.Exports {
  const bytes = m.bytes();
  assert.ok(WebAssembly.validate(bytes), 'module validates');
  return new WebAssembly.Instance(new WebAssembly.Module(bytes), imports).exports;
}

test('LEB128 encodings', () => {
  const enc = (f: (w: ByteWriter) => void): number[] => { const w = new ByteWriter(); f(w); return [...w.view()]; };
  assert.deepEqual(enc((w) => w.u32(624485)), [0xe5, 0x8e, 0x26]);
  assert.deepEqual(enc((w) => w.u32(0xffffffff)), [0xff, 0xff, 0xff, 0xff, 0x0f]);
  assert.deepEqual(enc((w) => w.s32(-123456)), [0xc0, 0xbb, 0x78]);
  assert.deepEqual(enc((w) => w.s32(63)), [0x3f]);
  assert.deepEqual(enc((w) => w.s32(64)), [0xc0, 0x00]);
  assert.deepEqual(enc((w) => w.s64(-1, -1)), [0x7f]);
  assert.deepEqual(enc((w) => w.s64(0, 0x80000000)), [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f]);
});

test('i64 constants round-trip through an exported function', () => {
  const cases: Array<[number, number]> = [[0, 0], [1, 0], [-1, -1], [0x89abcdef, 0x01234567], [0, 0x80000000],
    [0xffffffff, 0x7fffffff], [0x40, 0], [0xffffffc0, -1], [0x12345678, -2]];
  const m = new ModuleBuilder();
  cases.forEach(([lo, hi], i) => {
    const f = m.func([], [Type.i64]);
    f.code.i64(lo, hi);
    m.exportFunction(`c${i}`, f.index);
  });
  const ex = instantiate(m);
  cases.forEach(([lo, hi], i) => {
    const want = (BigInt(hi) << 32n) | BigInt(lo >>> 0);
    assert.equal((ex[`c${i}`] as () => bigint)(), BigInt.asIntN(64, want));
  });
});

test('arithmetic, locals, control flow and br_table', () => {
  const m = new ModuleBuilder();
  // sum of 0..n-1 with a loop
  const sum = m.func([Type.i32], [Type.i64]);
  const acc = sum.code.local(Type.i64);
  const i = sum.code.local(Type.i32);
  sum.code.block().loop()
    .get(i).get(0).op(Op.i32_ge_u).brIf(1)
    .get(acc).get(i).op(Op.i64_extend_i32_u).op(Op.i64_add).set(acc)
    .get(i).i32(1).op(Op.i32_add).set(i).br(0)
    .end().end().get(acc);
  m.exportFunction('sum', sum.index);
  // switch: 0 → 10, 1 → 20, else 30
  const sw = m.func([Type.i32], [Type.i32]);
  sw.code.block().block().block().get(0).brTable([0, 1], 2).end().i32(10).op(Op.return).end()
    .i32(20).op(Op.return).end().i32(30);
  m.exportFunction('sw', sw.index);
  // if/else yielding a value
  const sel = m.func([Type.i32], [Type.i32]);
  sel.code.get(0).if(Type.i32).i32(7).else().i32(9).end();
  m.exportFunction('sel', sel.index);
  const ex = instantiate(m);
  assert.equal((ex.sum as (n: number) => bigint)(100), 4950n);
  assert.deepEqual([0, 1, 2, 9].map((v) => (ex.sw as (n: number) => number)(v)), [10, 20, 30, 30]);
  assert.equal((ex.sel as (n: number) => number)(1), 7);
  assert.equal((ex.sel as (n: number) => number)(0), 9);
});

test('imported shared memory, imported functions and a mutable global', () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  const counter = new WebAssembly.Global({ value: 'i32', mutable: true }, 5);
  const seen: number[] = [];
  const m = new ModuleBuilder();
  const log = m.importFunction('env', 'log', [Type.i32, Type.f64], []);
  m.importMemory('env', 'memory', 1, 1, true);
  const g = m.importGlobal('env', 'counter', Type.i32, true);
  const f = m.func([Type.i32], []);
  f.code
    .get(0).i64(0x11223344, 0x55667788).mem(MemOp.i64_store, 8, 3)
    .get(0).get(0).mem(MemOp.i32_load16_u, 12, 1).op(Op.i64_extend_i32_u).mem(MemOp.i64_store, 16, 3)
    .globalGet(g).i32(1).op(Op.i32_add).globalSet(g)
    .globalGet(g).f64(2.5).call(log);
  m.exportFunction('f', f.index);
  const ex = instantiate(m, { env: { memory, counter, log: (a: number, b: number) => { seen.push(a, b); } } });
  (ex.f as (a: number) => void)(32);
  const dv = new DataView(memory.buffer);
  assert.equal(dv.getBigUint64(40, true), 0x5566778811223344n);
  assert.equal(dv.getBigUint64(48, true), 0x7788n);
  assert.equal(counter.value, 6);
  assert.deepEqual(seen, [6, 2.5]);
});

test('call_indirect and return_call_indirect through an imported table', () => {
  const table = new WebAssembly.Table({ element: 'anyfunc', initial: 4 });
  const a = new ModuleBuilder();
  const t = a.type([Type.i32], [Type.i32]);
  a.importTable('env', 'table', 4);
  const double = a.func([Type.i32], [Type.i32]);
  double.code.get(0).get(0).op(Op.i32_add);
  a.exportFunction('double', double.index);
  // countdown(n): n == 0 ? 0 : tail-call table[1](n - 1) — table[1] is itself, so deep recursion needs real tail calls
  const down = a.func([Type.i32], [Type.i32]);
  down.code.get(0).op(Op.i32_eqz).if().i32(42).op(Op.return).end()
    .get(0).i32(1).op(Op.i32_sub).i32(1).returnCallIndirect(t);
  a.exportFunction('down', down.index);
  const viaTable = a.func([Type.i32], [Type.i32]);
  viaTable.code.get(0).i32(0).callIndirect(t);
  a.exportFunction('viaTable', viaTable.index);
  const ex = instantiate(a, { env: { table } });
  table.set(0, ex.double as () => number);
  table.set(1, ex.down as () => number);
  // An element segment fills table[3] at instantiation.
  const b = new ModuleBuilder();
  b.importTable('env', 'table', 4);
  const triple = b.func([Type.i32], [Type.i32]);
  triple.code.get(0).i32(3).op(Op.i32_mul);
  b.placeInTable(3, triple.index);
  instantiate(b, { env: { table } });
  assert.equal((table.get(3) as (n: number) => number)(5), 15);
  assert.equal((ex.viaTable as (n: number) => number)(21), 42);
  assert.equal((ex.down as (n: number) => number)(1_000_000), 42);
});
