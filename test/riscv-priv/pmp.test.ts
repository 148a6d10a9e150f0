import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HS, PRIV_S, PRIV_U, TLB_LOAD } from '../../src/emulator/riscv/layout.js';
import { CAUSE, CSR } from '../../src/emulator/riscv/priv/csr-defs.js';
import { RAM, type TestMachine, csrRead, csrWrite, load, makeHart, mcause, store, tlbEntry } from './setup.js';

const R = 1;
const W = 2;
const X = 4;
const TOR = 1 << 3;
const NA4 = 2 << 3;
const NAPOT = 3 << 3;
const L = 0x80;

function setPriv(m: TestMachine, p: number): void {
  m.dv.setInt32(m.base + HS.PRIV, p, true);
  m.hart.resync();
}

/** pmpaddr value of a NAPOT region [base, base + size). */
const napot = (base: number, size: number) => BigInt(base / 4 + (size / 8 - 1));

test('with every entry OFF, S and U accesses are allowed', () => {
  const m = makeHart();
  setPriv(m, PRIV_U);
  assert.equal(load(m, BigInt(RAM), 4), 0n);
});

test('NAPOT entry grants S-mode RW over RAM; outside it S faults and M does not', () => {
  const m = makeHart();
  csrWrite(m, CSR.MTVEC, BigInt(RAM));
  csrWrite(m, CSR.PMPADDR0, napot(RAM, 0x10_0000));
  csrWrite(m, CSR.PMPCFG0, BigInt(NAPOT | R | W));
  assert.equal(csrRead(m, CSR.PMPADDR0), napot(RAM, 0x10_0000));
  setPriv(m, PRIV_S);
  assert.ok(store(m, BigInt(RAM + 0x8_0000), 4, 1n));
  assert.equal(load(m, BigInt(RAM + 0x10_0000), 4), undefined);
  assert.equal(mcause(m), BigInt(CAUSE.LOAD_ACCESS));
  assert.equal(load(m, BigInt(RAM + 0x10_0000), 4), 0n, 'M-mode: no entry matches, allowed');
  setPriv(m, PRIV_S);
  assert.equal(m.hart.fetchHost(RAM + 0x100, 0), -1, 'no X');
  assert.equal(mcause(m), BigInt(CAUSE.FETCH_ACCESS));
});

test('TOR ranges use the previous pmpaddr as the bottom; an access straddling a boundary fails', () => {
  const m = makeHart();
  csrWrite(m, CSR.MTVEC, BigInt(RAM));
  csrWrite(m, CSR.PMPADDR0, BigInt(RAM / 4));
  csrWrite(m, CSR.PMPADDR0 + 1, BigInt((RAM + 0x2000) / 4));
  csrWrite(m, CSR.PMPCFG0, BigInt((R | W | X | TOR) << 8));
  setPriv(m, PRIV_S);
  assert.equal(load(m, BigInt(RAM + 0x1ff8), 8), 0n);
  assert.equal(load(m, BigInt(RAM + 0x1ffc), 8), undefined, 'partially matching');
  setPriv(m, PRIV_S);
  assert.equal(load(m, BigInt(RAM - 8), 8), undefined);
});

test('NA4 covers four bytes; the lowest-numbered matching entry wins', () => {
  const m = makeHart();
  csrWrite(m, CSR.MTVEC, BigInt(RAM));
  csrWrite(m, CSR.PMPADDR0, BigInt((RAM + 0x100) / 4));
  csrWrite(m, CSR.PMPADDR0 + 1, napot(RAM, 0x1000));
  csrWrite(m, CSR.PMPCFG0, BigInt(NA4 | R | ((NAPOT | R | W) << 8)));
  setPriv(m, PRIV_S);
  assert.equal(store(m, BigInt(RAM + 0x100), 4, 1n), false, 'entry 0: read-only');
  setPriv(m, PRIV_S);
  assert.ok(store(m, BigInt(RAM + 0x104), 4, 1n), 'entry 1');
});

test('locked entries bind M-mode and ignore writes (also pmpaddr below a locked TOR)', () => {
  const m = makeHart();
  csrWrite(m, CSR.MTVEC, BigInt(RAM));
  csrWrite(m, CSR.PMPADDR0, BigInt(RAM / 4));
  csrWrite(m, CSR.PMPADDR0 + 1, BigInt((RAM + 0x1000) / 4));
  csrWrite(m, CSR.PMPCFG0, BigInt((L | TOR | R) << 8));
  assert.equal(store(m, BigInt(RAM + 0x10), 4, 1n), false);
  assert.equal(mcause(m), BigInt(CAUSE.STORE_ACCESS));
  assert.equal(load(m, BigInt(RAM + 0x10), 4), 0n);
  csrWrite(m, CSR.PMPCFG0, 0n);
  assert.equal(csrRead(m, CSR.PMPCFG0), BigInt((L | TOR | R) << 8));
  csrWrite(m, CSR.PMPADDR0, 0n);
  csrWrite(m, CSR.PMPADDR0 + 1, 0n);
  assert.equal(csrRead(m, CSR.PMPADDR0), BigInt(RAM / 4));
  assert.equal(csrRead(m, CSR.PMPADDR0 + 1), BigInt((RAM + 0x1000) / 4));
});

test('cfg WARL: W without R clears W; bits 6:5 read 0; pmpaddr keeps 54 bits', () => {
  const m = makeHart();
  csrWrite(m, CSR.PMPCFG2, BigInt(W | 0x60 | ((R | W) << 8)));
  assert.equal(csrRead(m, CSR.PMPCFG2), BigInt((R | W) << 8));
  csrWrite(m, CSR.PMPADDR15, 0xffff_ffff_ffff_ffffn);
  assert.equal(csrRead(m, CSR.PMPADDR15), (1n << 54n) - 1n);
});

test('no TLB entry for a page PMP covers only in part', () => {
  const m = makeHart();
  csrWrite(m, CSR.PMPADDR0, BigInt((RAM + 0x800) / 4));
  csrWrite(m, CSR.PMPADDR0 + 1, napot(RAM, 1 << 20));
  csrWrite(m, CSR.PMPCFG0, BigInt(TOR | R | W | ((NAPOT | R) << 8)));
  setPriv(m, PRIV_S);
  assert.equal(load(m, BigInt(RAM + 0x10), 4), 0n);
  const e = tlbEntry(m, TLB_LOAD, RAM);
  assert.equal(m.dv.getInt32(e, true), -1);
  assert.equal(load(m, BigInt(RAM + 0x1010), 4), 0n);
  const e2 = tlbEntry(m, TLB_LOAD, RAM + 0x1000);
  assert.equal(m.dv.getInt32(e2, true), (RAM + 0x1000) >>> 12);
});

test("OpenSBI's layout: a locked-out firmware region first, then NAPOT over the whole address space", () => {
  const m = makeHart();
  csrWrite(m, CSR.MTVEC, BigInt(RAM));
  csrWrite(m, CSR.PMPADDR0, napot(RAM, 0x8_0000));
  csrWrite(m, CSR.PMPADDR0 + 1, 0xffff_ffff_ffff_ffffn);
  csrWrite(m, CSR.PMPCFG0, BigInt(NAPOT | ((NAPOT | R | W | X) << 8)));
  setPriv(m, PRIV_S);
  assert.equal(load(m, BigInt(RAM + 0x100), 4), undefined, 'firmware region');
  setPriv(m, PRIV_S);
  assert.equal(load(m, BigInt(RAM + 0x8_0000), 4), 0n);
  assert.equal(load(m, 0x3f_ffff_fff0n, 4), undefined, 'allowed by PMP, but no RAM or device');
  assert.equal(mcause(m), BigInt(CAUSE.LOAD_ACCESS));
});
