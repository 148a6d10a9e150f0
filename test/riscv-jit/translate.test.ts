import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JitEngine } from '../../src/emulator/riscv/jit/engine.js';
import { HS, RAM_GPA_BASE, RAM_HOST_BASE } from '../../src/emulator/riscv/layout.js';
import { MiniHart, TestStepper, assemble } from './support.js';

const M = (1n << 64n) - 1n;
const U = (v: bigint) => BigInt.asUintN(64, v);
const S = (v: bigint) => BigInt.asIntN(64, v);
const W = (v: bigint) => U(BigInt.asIntN(32, v));
const lo32 = (v: bigint) => v & 0xffffffffn;
const s32 = (v: bigint) => BigInt.asIntN(32, v);
const MIN = 1n << 63n;
const rotl = (a: bigint, n: bigint, bits: bigint) => {
  const m = (1n << bits) - 1n;
  a &= m; n &= bits - 1n;
  return ((a << n) | (a >> ((bits - n) % bits))) & m;
};

const R: Record<string, (a: bigint, b: bigint) => bigint> = {
  add: (a, b) => U(a + b), sub: (a, b) => U(a - b), sll: (a, b) => U(a << (b & 63n)),
  slt: (a, b) => (S(a) < S(b) ? 1n : 0n), sltu: (a, b) => (a < b ? 1n : 0n), xor: (a, b) => a ^ b,
  srl: (a, b) => a >> (b & 63n), sra: (a, b) => U(S(a) >> (b & 63n)), or: (a, b) => a | b, and: (a, b) => a & b,
  mul: (a, b) => U(a * b), mulh: (a, b) => U((S(a) * S(b)) >> 64n), mulhsu: (a, b) => U((S(a) * b) >> 64n),
  mulhu: (a, b) => (a * b) >> 64n,
  div: (a, b) => (b === 0n ? M : a === MIN && b === M ? a : U(S(a) / S(b))),
  divu: (a, b) => (b === 0n ? M : a / b),
  rem: (a, b) => (b === 0n ? a : b === M ? 0n : U(S(a) % S(b))),
  remu: (a, b) => (b === 0n ? a : a % b),
  addw: (a, b) => W(a + b), subw: (a, b) => W(a - b), sllw: (a, b) => W(a << (b & 31n)),
  srlw: (a, b) => W(lo32(a) >> (b & 31n)), sraw: (a, b) => W(s32(a) >> (b & 31n)), mulw: (a, b) => W(a * b),
  divw: (a, b) => (s32(b) === 0n ? M : s32(a) === -(1n << 31n) && s32(b) === -1n ? W(a) : W(s32(a) / s32(b))),
  divuw: (a, b) => (lo32(b) === 0n ? M : W(lo32(a) / lo32(b))),
  remw: (a, b) => (s32(b) === 0n ? W(a) : s32(b) === -1n ? 0n : W(s32(a) % s32(b))),
  remuw: (a, b) => (lo32(b) === 0n ? W(a) : W(lo32(a) % lo32(b))),
  'add.uw': (a, b) => U(lo32(a) + b), sh1add: (a, b) => U((a << 1n) + b), sh2add: (a, b) => U((a << 2n) + b),
  sh3add: (a, b) => U((a << 3n) + b), 'sh1add.uw': (a, b) => U((lo32(a) << 1n) + b),
  'sh2add.uw': (a, b) => U((lo32(a) << 2n) + b), 'sh3add.uw': (a, b) => U((lo32(a) << 3n) + b),
  andn: (a, b) => a & ~b & M, orn: (a, b) => U(a | ~b), xnor: (a, b) => U(~(a ^ b)),
  max: (a, b) => (S(a) > S(b) ? a : b), min: (a, b) => (S(a) < S(b) ? a : b),
  maxu: (a, b) => (a > b ? a : b), minu: (a, b) => (a < b ? a : b),
  rol: (a, b) => rotl(a, b, 64n), ror: (a, b) => rotl(a, 64n - (b & 63n), 64n),
  rolw: (a, b) => W(rotl(a, b, 32n)), rorw: (a, b) => W(rotl(a, 32n - (b & 31n), 32n)),
  bclr: (a, b) => a & ~(1n << (b & 63n)) & M, bset: (a, b) => a | (1n << (b & 63n)),
  binv: (a, b) => a ^ (1n << (b & 63n)), bext: (a, b) => (a >> (b & 63n)) & 1n,
};

const byteWise = (a: bigint, f: (byte: bigint, i: number) => bigint) => {
  let r = 0n;
  for (let i = 0; i < 8; i++) r |= f((a >> BigInt(8 * i)) & 0xffn, i);
  return r;
};
const popcount = (v: bigint) => [...v.toString(2)].filter((c) => c === '1').length;
const clz = (v: bigint, bits: number) => (v === 0n ? bits : bits - v.toString(2).length);
const ctz = (v: bigint, bits: number) => (v === 0n ? bits : v.toString(2).length - 1 - v.toString(2).lastIndexOf('1'));

/** Immediate and unary forms: source text (a0 in, a2 out) and reference. */
const I: Array<[string, (a: bigint) => bigint]> = [
  ['addi a2, a0, -2048', (a) => U(a - 2048n)], ['slti a2, a0, -1', (a) => (S(a) < -1n ? 1n : 0n)],
  ['sltiu a2, a0, -1', (a) => (a < M ? 1n : 0n)], ['xori a2, a0, -256', (a) => a ^ U(-256n)],
  ['ori a2, a0, 0x7ff', (a) => a | 0x7ffn], ['andi a2, a0, -16', (a) => a & U(-16n)],
  ['slli a2, a0, 63', (a) => U(a << 63n)], ['srli a2, a0, 33', (a) => a >> 33n], ['srai a2, a0, 40', (a) => U(S(a) >> 40n)],
  ['addiw a2, a0, 2047', (a) => W(a + 2047n)], ['slliw a2, a0, 31', (a) => W(a << 31n)],
  ['srliw a2, a0, 3', (a) => W(lo32(a) >> 3n)], ['sraiw a2, a0, 31', (a) => W(s32(a) >> 31n)],
  ['lui a2, 0x80000', () => U(-(1n << 31n))], ['rori a2, a0, 13', (a) => rotl(a, 51n, 64n)],
  ['roriw a2, a0, 7', (a) => W(rotl(a, 25n, 32n))], ['bclri a2, a0, 63', (a) => a & ~MIN],
  ['bseti a2, a0, 40', (a) => a | (1n << 40n)], ['binvi a2, a0, 0', (a) => a ^ 1n], ['bexti a2, a0, 31', (a) => (a >> 31n) & 1n],
  ['slli.uw a2, a0, 4', (a) => lo32(a) << 4n],
  ['clz a2, a0', (a) => BigInt(clz(a, 64))], ['ctz a2, a0', (a) => BigInt(ctz(a, 64))], ['cpop a2, a0', (a) => BigInt(popcount(a))],
  ['clzw a2, a0', (a) => BigInt(clz(lo32(a), 32))], ['ctzw a2, a0', (a) => BigInt(ctz(lo32(a), 32))],
  ['cpopw a2, a0', (a) => BigInt(popcount(lo32(a)))], ['sext.b a2, a0', (a) => U(BigInt.asIntN(8, a))],
  ['sext.h a2, a0', (a) => U(BigInt.asIntN(16, a))], ['zext.h a2, a0', (a) => a & 0xffffn],
  ['orc.b a2, a0', (a) => byteWise(a, (b, i) => (b !== 0n ? 0xffn << BigInt(8 * i) : 0n))],
  ['rev8 a2, a0', (a) => byteWise(a, (b, i) => b << BigInt(8 * (7 - i)))],
];

const VALUES = [0n, 1n, 2n, 7n, M, MIN, MIN - 1n, 0x80000000n, 0x7fffffffn, 0xffffffffn, U(-0x80000000n),
  0x123456789abcdef0n, 0xfedcba9876543210n, 63n, 32n, 31n];

function newEngine(chaining = true): { hart: MiniHart; engine: JitEngine; stepper: TestStepper } {
  const hart = new MiniHart();
  const stepper = new TestStepper(hart);
  const engine = new JitEngine(hart, stepper, { hotThreshold: 1, batchSize: 1000, flushAfter: 1, chaining, background: false });
  stepper.engine = engine;
  hart.codeHooks = engine.cache;
  hart.fenceIHook = () => engine.cache.invalidateAll();
  return { hart, engine, stepper };
}

function runToEcall(hart: MiniHart, engine: JitEngine, stepper: TestStepper, start = BigInt(RAM_GPA_BASE)): number {
  hart.pc = start;
  stepper.halted = false;
  const n = engine.run(10_000_000);
  assert.ok(stepper.halted, `stopped at ecall (pc ${hart.pc.toString(16)})`);
  return n;
}

test('register-register ALU ops match a BigInt reference on edge values', () => {
  const names = Object.keys(R);
  const { hart, engine, stepper } = newEngine();
  hart.loadProgram(assemble(names.map((op, k) => `${op} t0, a0, a1\nsd t0, ${8 * k}(s0)`).join('\n') + '\necall'));
  const out = BigInt(RAM_GPA_BASE + 0x10000);
  for (const a of VALUES) {
    for (const b of VALUES) {
      hart.setX(10, a); hart.setX(11, b); hart.setX(8, out);
      runToEcall(hart, engine, stepper);
      names.forEach((op, k) => {
        const got = hart.view.getBigUint64(RAM_HOST_BASE + 0x10000 + 8 * k, true);
        assert.equal(got, R[op]!(a, b), `${op} ${a.toString(16)}, ${b.toString(16)}`);
      });
    }
  }
  assert.equal(engine.cache.stats.modules > 0, true);
});

test('immediate and unary ALU ops match a BigInt reference', () => {
  for (const [src, ref] of I) {
    const { hart, engine, stepper } = newEngine();
    hart.loadProgram(assemble(`${src}\necall`));
    for (const a of VALUES) {
      hart.setX(10, a);
      runToEcall(hart, engine, stepper);
      assert.equal(hart.x(12), ref(a), `${src} with a0 = ${a.toString(16)}`);
    }
  }
});

test('loads and stores: sign/zero extension, TLB misses then hits, misaligned through the slow path', () => {
  const { hart, engine, stepper } = newEngine();
  hart.loadProgram(assemble(`
    li t0, -2
    sd t0, 0(s0)
    li t1, 0x1234
    sh t1, 10(s0)
    sb t1, 12(s0)
    sw t1, 17(s0)
    lb a0, 0(s0)
    lbu a1, 0(s0)
    lh a2, 0(s0)
    lhu a3, 0(s0)
    lw a4, 0(s0)
    lwu a5, 0(s0)
    ld a6, 8(s0)
    lw a7, 17(s0)
    ecall`));
  hart.setX(8, BigInt(RAM_GPA_BASE + 0x20000));
  runToEcall(hart, engine, stepper);
  const want = [U(-2n), 0xfen, U(-2n), 0xfffen, U(-2n), 0xfffffffen, 0x0000_0034_1234_0000n, 0x1234n];
  want.forEach((v, i) => assert.equal(hart.x(10 + i), v, `a${i}`));
  const slow = hart.slowLoads + hart.slowStores;
  runToEcall(hart, engine, stepper);
  want.forEach((v, i) => assert.equal(hart.x(10 + i), v, `a${i} (second run)`));
  // The second run hits the TLB except for the misaligned accesses.
  assert.equal(hart.slowLoads + hart.slowStores - slow, 2);
});

test('a faulting load traps with the registers of the retired instructions written back', () => {
  const { hart, engine, stepper } = newEngine();
  hart.loadProgram(assemble(`
    li a0, 5
    addi a1, a0, 1
    ld a2, 0(zero)
    li a3, 9
    ecall`));
  const trap = assemble('ecall');
  hart.mem8.set(trap, RAM_HOST_BASE + 0xf00);
  hart.setX(12, 77n); hart.setX(13, 88n);
  const n = runToEcall(hart, engine, stepper);
  assert.equal(hart.lastCause, 5);
  assert.equal(hart.pc, hart.trapVector);
  assert.deepEqual([hart.x(10), hart.x(11), hart.x(12), hart.x(13)], [5n, 6n, 77n, 88n]);
  assert.equal(n, 2);
  assert.equal(hart.instret, 2n);
});

test('branches, jal/jalr links and chaining: a hot loop stays inside WebAssembly', () => {
  const program = `
    li t0, 100000
    li a0, 0
  1:
    add a0, a0, t0
    addi t0, t0, -1
    bnez t0, 1b
    call f
    ecall
  f:
    addi a1, a0, 1
    ret`;
  for (const chaining of [true, false]) {
    const { hart, engine, stepper } = newEngine(chaining);
    hart.loadProgram(assemble(program));
    const n = runToEcall(hart, engine, stepper);
    assert.equal(hart.x(10), 5000050000n);
    assert.equal(hart.x(11), 5000050001n);
    assert.equal(BigInt(n), hart.instret);
    assert.equal(n, 3 + 3 * 100000 + 4);
    if (chaining) assert.ok(engine.dispatches < 20, `dispatches ${engine.dispatches}`);
    else assert.ok(engine.dispatches > 100000, `dispatches ${engine.dispatches}`);
  }
});

test('the budget and EXIT_REQUEST stop a guest that never stops', () => {
  const { hart, engine } = newEngine();
  hart.loadProgram(assemble('1: addi a0, a0, 1\nj 1b'));
  const n = engine.run(100_000);
  assert.ok(n >= 100_000 && n < 100_010, `ran ${n}`);
  assert.equal(hart.x(10), BigInt(n / 2));
  hart.view.setInt32(hart.stateBase + HS.EXIT_REQUEST, 1, true);
  assert.equal(engine.run(100_000), 0);
  assert.equal(hart.view.getInt32(hart.stateBase + HS.EXIT_REQUEST, true), 0);
});

test('self-modifying code: a store to a translated page (and fence.i) runs the new code', () => {
  const { hart, engine, stepper } = newEngine();
  // f returns 1; main calls it, patches its first instruction to "li a0, 2" (imm field + 1), and calls it again.
  hart.loadProgram(assemble(`
    call f
    mv s1, a0
    la t0, f
    lw t1, 0(t0)
    lui t2, 0x100
    add t1, t1, t2
    sw t1, 0(t0)
    fence.i
    call f
    mv s2, a0
    ecall
    .balign 4
  f:
    .option push
    .option norvc
    li a0, 1
    .option pop
    ret`));
  runToEcall(hart, engine, stepper);
  assert.equal(hart.x(9), 1n);
  assert.equal(hart.x(18), 2n);
  // Without fence.i the store's invalidation alone is enough in this JIT.
  const again = newEngine();
  again.hart.loadProgram(assemble(`
    call f
    mv s1, a0
    la t0, f
    lw t1, 0(t0)
    lui t2, 0x100
    add t1, t1, t2
    sw t1, 0(t0)
    call f
    mv s2, a0
    ecall
    .balign 4
  f:
    .option push
    .option norvc
    li a0, 1
    .option pop
    ret`));
  runToEcall(again.hart, again.engine, again.stepper);
  assert.equal(again.hart.x(18), 2n);
});

test('fence.i after code changed behind the JIT (another hart, DMA): changed pages retranslate, unchanged ones stay', () => {
  const { hart, engine, stepper } = newEngine();
  const program = assemble(`
    call f
    mv s1, a0
    ecall
    fence.i
    call f
    mv s2, a0
    ecall
    .balign 4096
  f:
    .option push
    .option norvc
    li a0, 1
    .option pop
    ret`);
  hart.loadProgram(program);
  runToEcall(hart, engine, stepper);
  assert.equal(hart.x(9), 1n);
  // Patch f's "li a0, 1" into "li a0, 2" directly in memory, as a device or another hart would.
  const f = RAM_HOST_BASE + 0x1000;
  hart.view.setUint32(f, hart.view.getUint32(f, true) + (1 << 20), true);
  const dropped = engine.cache.stats.dropped;
  runToEcall(hart, engine, stepper, hart.pc + 4n);
  assert.equal(hart.x(18), 2n);
  const { validated, changed } = engine.cache.stats;
  assert.equal(changed, 1, 'only the patched page changed');
  assert.ok(validated >= 2, `validated ${validated}`);
  assert.equal(engine.cache.stats.dropped - dropped, 1, 'only the patched page lost its translation');
});
