import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import type { AmoOp } from '../../src/emulator/riscv/hart-api.js';
import { HS, PRIV_S, RAM_GPA_BASE, CODE_PAGE_MAP_BASE } from '../../src/emulator/riscv/layout.js';
import { CAUSE, CSR } from '../../src/emulator/riscv/priv/csr-defs.js';
import { resetHartState } from '../../src/emulator/riscv/priv/state.js';
import { startModuleWorker } from '../../src/emulator/vcpu/start-worker.js';
import { PTE, PageTables } from './page-tables.js';
import {
  MMIO_BASE, RAM, RAM_BYTES, type TestMachine, csrWrite, halves, makeHart, mcause, mtval, readU64, scratch0,
  setScratch0, slot, writeU64,
} from './setup.js';

const A = RAM + 0x100;

function amo(m: TestMachine, op: AmoOp, va: number, size: 4 | 8, operand: bigint): bigint | undefined {
  setScratch0(m, operand);
  return m.hart.amo(op, ...halves(BigInt(va)), size) ? scratch0(m) : undefined;
}

function lr(m: TestMachine, va: number, size: 4 | 8): bigint | undefined {
  return m.hart.loadReserved(...halves(BigInt(va)), size) ? scratch0(m) : undefined;
}

/** sc: 0n success, 1n failure, undefined when it trapped. */
function sc(m: TestMachine, va: number, size: 4 | 8, value: bigint): bigint | undefined {
  setScratch0(m, value);
  return m.hart.storeConditional(...halves(BigInt(va)), size) ? slot(m, HS.SCRATCH1) : undefined;
}

const u64 = (v: bigint) => BigInt.asUintN(64, v);

test('AMO .w: every operation, the old value sign-extended', () => {
  const m = makeHart();
  const cases: [AmoOp, bigint, bigint, bigint][] = [
    ['swap', 0x8000_0000n, 5n, 5n],
    ['add', 0xffff_ffffn, 2n, 1n],
    ['and', 0xf0f0n, 0xff00n, 0xf000n],
    ['or', 0xf0f0n, 0x0f00n, 0xfff0n],
    ['xor', 0xf0f0n, 0xff00n, 0x0ff0n],
    ['min', 0xffff_fffen, 3n, 0xffff_fffen],
    ['max', 0xffff_fffen, 3n, 3n],
    ['minu', 0xffff_fffen, 3n, 3n],
    ['maxu', 0xffff_fffen, 3n, 0xffff_fffen],
  ];
  for (const [op, before, operand, after] of cases) {
    writeU64(m, A, 0xaaaa_aaaa_0000_0000n | before);
    assert.equal(amo(m, op, A, 4, operand), u64(BigInt.asIntN(32, before)), op);
    assert.equal(readU64(m, A), 0xaaaa_aaaa_0000_0000n | after, op);
  }
});

test('AMO .d: every operation through the WebAssembly helper', () => {
  const m = makeHart();
  const big = 0x8000_0000_0000_0001n;
  const cases: [AmoOp, bigint, bigint, bigint][] = [
    ['swap', big, 5n, 5n],
    ['add', 0xffff_ffffn, 1n, 0x1_0000_0000n],
    ['and', big, 0xffn, 1n],
    ['or', 2n, big, big | 2n],
    ['xor', big, big, 0n],
    ['min', big, 3n, big],
    ['max', big, 3n, 3n],
    ['minu', big, 3n, 3n],
    ['maxu', big, 3n, big],
  ];
  for (const [op, before, operand, after] of cases) {
    writeU64(m, A, before);
    assert.equal(amo(m, op, A, 8, operand), before, op);
    assert.equal(readU64(m, A), after, op);
  }
});

test('LR/SC: success, failure after a change of value, failure without reservation, reservation cleared', () => {
  const m = makeHart();
  writeU64(m, A, 0xffff_fff0n);
  assert.equal(lr(m, A, 4), u64(-16n));
  assert.equal(sc(m, A, 4, 7n), 0n);
  assert.equal(readU64(m, A), 7n);
  assert.equal(sc(m, A, 4, 8n), 1n, 'reservation used up');
  assert.equal(readU64(m, A), 7n);
  assert.equal(lr(m, A, 8), 7n);
  writeU64(m, A, 9n);
  assert.equal(sc(m, A, 8, 10n), 1n, 'value changed');
  assert.equal(readU64(m, A), 9n);
  assert.equal(lr(m, A, 8), 9n);
  assert.equal(sc(m, A + 8, 8, 10n), 1n, 'other address');
  assert.equal(lr(m, A, 8), 9n);
  assert.equal(sc(m, A, 8, 0x1_0000_0000n), 0n);
  assert.equal(readU64(m, A), 0x1_0000_0000n);
});

test('misaligned LR is a load misaligned fault, misaligned SC/AMO a store/AMO misaligned fault; MMIO is an access fault', () => {
  const m = makeHart();
  assert.equal(lr(m, A + 4, 8), undefined);
  assert.equal(mcause(m), BigInt(CAUSE.LOAD_MISALIGNED));
  assert.equal(mtval(m), BigInt(A + 4));
  assert.equal(sc(m, A + 2, 4, 0n), undefined);
  assert.equal(mcause(m), BigInt(CAUSE.STORE_MISALIGNED));
  assert.equal(amo(m, 'add', A + 1, 4, 0n), undefined);
  assert.equal(mcause(m), BigInt(CAUSE.STORE_MISALIGNED));
  assert.equal(amo(m, 'add', MMIO_BASE, 4, 0n), undefined);
  assert.equal(mcause(m), BigInt(CAUSE.STORE_ACCESS));
});

test('AMOs need write permission and set D; an AMO on a code page invalidates it', () => {
  const m = makeHart();
  csrWrite(m, CSR.MTVEC, BigInt(RAM));
  const pt = new PageTables(m, 3);
  const at = pt.map(0x1000n, RAM + 0x1_0000, PTE.V | PTE.R | PTE.W);
  pt.map(0x2000n, RAM + 0x1_0000, PTE.V | PTE.R | PTE.A);
  csrWrite(m, CSR.SATP, pt.satp);
  m.dv.setInt32(m.base + HS.PRIV, PRIV_S, true);
  m.hart.resync();
  const pages: number[] = [];
  m.hart.setCodeCacheHooks({ invalidatePage: (p) => pages.push(p), invalidateAll: () => {} });
  m.dv.setUint8(CODE_PAGE_MAP_BASE + 0x10, 1);
  assert.equal(amo(m, 'add', 0x1008, 8, 1n), 0n);
  assert.equal(readU64(m, at) & 0xc0n, 0xc0n);
  assert.deepEqual(pages, [(RAM_GPA_BASE + 0x1_0000) / 4096]);
  assert.equal(amo(m, 'add', 0x2008, 8, 1n), undefined);
  assert.equal(mcause(m), BigInt(CAUSE.STORE_PAGE_FAULT));
});

test('AMOs and LR/SC are atomic across worker threads', async () => {
  const m = makeHart();
  const counter = A;
  for (const off of [0, 8, 16]) writeU64(m, counter + off, 0n);
  const count = 20_000;
  const workers = [1, 2].map((id) => {
    resetHartState(m.memory, id, RAM);
    return startModuleWorker(new URL('./amo-worker.ts', import.meta.url), {
      memory: m.memory, id, ramBytes: RAM_BYTES, counter, count,
    });
  });
  await Promise.all(workers.map((w) => once(w, 'message')));
  await Promise.all(workers.map((w) => w.terminate()));
  assert.equal(readU64(m, counter) & 0xffff_ffffn, BigInt(2 * count));
  assert.equal(readU64(m, counter + 8), BigInt(2 * count));
  assert.equal(readU64(m, counter + 16), BigInt(2 * count));
});
