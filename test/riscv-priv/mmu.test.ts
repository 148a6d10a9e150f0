import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CODE_PAGE_MAP_BASE, HS, PRIV_M, PRIV_S, PRIV_U, RAM_GPA_BASE, RAM_HOST_BASE, TLB_LOAD, TLB_STORE, TLB_STRIDE, tlbBase } from '../../src/emulator/riscv/layout.js';
import { CAUSE, CSR, MSTATUS } from '../../src/emulator/riscv/priv/csr-defs.js';
import { PTE, PageTables, RWX_AD } from './page-tables.js';
import {
  RAM, type TestMachine, csrWrite, halves, load, makeHart, mcause, mtval, readU64, readU8, setMstatus, store, tlbEntry, writeU64,
} from './setup.js';

const DATA = RAM + 0x20_0000;

function setPriv(m: TestMachine, p: number): void {
  m.dv.setInt32(m.base + HS.PRIV, p, true);
  m.hart.resync();
}

/** A hart running in `mode` with the given page tables active. */
function paged(levels: 3 | 4 = 3, mode = PRIV_S): { m: TestMachine; pt: PageTables } {
  const m = makeHart();
  csrWrite(m, CSR.MTVEC, BigInt(RAM + 0x1000));
  const pt = new PageTables(m, levels);
  csrWrite(m, CSR.SATP, pt.satp);
  setPriv(m, mode);
  return { m, pt };
}

function expectFault(m: TestMachine, cause: number, va: bigint): void {
  assert.equal(mcause(m), BigInt(cause));
  assert.equal(mtval(m), BigInt.asUintN(64, va));
}

test('Sv39: 4 KiB pages translate loads, stores and fetches', () => {
  const { m, pt } = paged();
  pt.map(0x4000_0000n, DATA, RWX_AD);
  assert.ok(store(m, 0x4000_0010n, 8, 0x1122_3344_5566_7788n));
  assert.equal(readU64(m, DATA + 0x10), 0x1122_3344_5566_7788n);
  assert.equal(load(m, 0x4000_0014n, 4), 0x1122_3344n);
  assert.equal(m.hart.fetchHost(0x4000_0020, 0), DATA - RAM_GPA_BASE + RAM_HOST_BASE + 0x20);
});

test('Sv39: 2 MiB and 1 GiB superpages; a misaligned superpage is a page fault', () => {
  const { m, pt } = paged();
  pt.map(0x20_0000n, DATA, RWX_AD, 1);
  pt.map(0xc000_0000n, RAM, RWX_AD, 2);
  writeU64(m, DATA + 0x1_2340, 42n);
  assert.equal(load(m, 0x21_2340n, 8), 42n);
  assert.equal(load(m, 0xc000_0000n + BigInt(DATA - RAM) + 0x1_2340n, 8), 42n);
  pt.map(0x40_0000n, DATA + 0x1000, RWX_AD, 1);
  setPriv(m, PRIV_S);
  assert.equal(load(m, 0x40_0008n, 8), undefined);
  expectFault(m, CAUSE.LOAD_PAGE_FAULT, 0x40_0008n);
});

test('Sv39: non-canonical addresses, invalid and reserved PTEs are page faults of the access kind', () => {
  const { m, pt } = paged();
  pt.map(0x1000n, DATA, RWX_AD);
  assert.equal(load(m, 0x40_0000_1000n, 8), undefined, 'bit 38 not sign-extended');
  expectFault(m, CAUSE.LOAD_PAGE_FAULT, 0x40_0000_1000n);
  setPriv(m, PRIV_S);
  assert.equal(store(m, 0x5000n, 4, 0n), false, 'unmapped');
  expectFault(m, CAUSE.STORE_PAGE_FAULT, 0x5000n);
  setPriv(m, PRIV_S);
  pt.map(0x6000n, DATA, PTE.V | PTE.W | PTE.A | PTE.D);
  assert.equal(load(m, 0x6000n, 4), undefined, 'W without R');
  expectFault(m, CAUSE.LOAD_PAGE_FAULT, 0x6000n);
  setPriv(m, PRIV_S);
  const at = pt.map(0x7000n, DATA, RWX_AD);
  writeU64(m, at, readU64(m, at) | (1n << 61n));
  assert.equal(m.hart.fetchHost(0x7000, 0), -1, 'PBMT bits without Svpbmt');
  expectFault(m, CAUSE.FETCH_PAGE_FAULT, 0x7000n);
});

test('Sv48: four levels, high canonical addresses, 512 GiB-aligned rules', () => {
  const { m, pt } = paged(4);
  pt.map(0x12_3456_7000n, DATA, RWX_AD);
  pt.map(0xffff_8000_0000_2000n, DATA + 0x1000, RWX_AD);
  writeU64(m, DATA + 8, 7n);
  writeU64(m, DATA + 0x1008, 9n);
  assert.equal(load(m, 0x12_3456_7008n, 8), 7n);
  assert.equal(load(m, 0xffff_8000_0000_2008n, 8), 9n);
  assert.equal(load(m, 0x8000_0000_2008n, 8), undefined, 'bit 47 set without sign extension');
  expectFault(m, CAUSE.LOAD_PAGE_FAULT, 0x8000_0000_2008n);
});

test('A and D: a load sets A, a store sets D; TLB entries are made only after both are set', () => {
  const { m, pt } = paged();
  const at = pt.map(0x3000n, DATA, PTE.V | PTE.R | PTE.W);
  assert.equal(load(m, 0x3000n, 1), 0n);
  assert.equal(readU64(m, at) & 0xffn, BigInt(PTE.V | PTE.R | PTE.W | PTE.A));
  assert.ok(store(m, 0x3000n, 1, 5n));
  assert.equal(readU64(m, at) & 0xffn, BigInt(PTE.V | PTE.R | PTE.W | PTE.A | PTE.D));
  assert.equal(readU8(m, DATA), 5);
});

test('permissions: R/W/X, U pages from S need SUM (never for fetch), S pages from U fault, MXR', () => {
  const { m, pt } = paged();
  pt.map(0x1000n, DATA, PTE.V | PTE.R | PTE.A | PTE.D);
  pt.map(0x2000n, DATA, PTE.V | PTE.X | PTE.A);
  pt.map(0x3000n, DATA, RWX_AD | PTE.U);
  assert.equal(store(m, 0x1000n, 4, 0n), false);
  expectFault(m, CAUSE.STORE_PAGE_FAULT, 0x1000n);
  setPriv(m, PRIV_S);
  assert.equal(m.hart.fetchHost(0x1000, 0), -1);
  expectFault(m, CAUSE.FETCH_PAGE_FAULT, 0x1000n);
  setPriv(m, PRIV_S);
  assert.equal(load(m, 0x2000n, 4), undefined, 'execute-only');
  setMstatus(m, MSTATUS.MXR);
  setPriv(m, PRIV_S);
  assert.equal(load(m, 0x2000n, 4), 0n, 'MXR');
  assert.equal(load(m, 0x3000n, 4), undefined, 'U page from S without SUM');
  setMstatus(m, MSTATUS.SUM);
  setPriv(m, PRIV_S);
  assert.equal(load(m, 0x3000n, 4), 0n, 'with SUM');
  assert.equal(m.hart.fetchHost(0x3000, 0), -1, 'never fetch from a U page in S');
  setPriv(m, PRIV_U);
  assert.equal(m.hart.fetchHost(0x3000, 0) > 0, true);
  assert.equal(load(m, 0x1000n, 4), undefined, 'S page from U');
  expectFault(m, CAUSE.LOAD_PAGE_FAULT, 0x1000n);
});

test('MPRV: M-mode loads and stores translate with MPP, fetches do not', () => {
  const { m, pt } = paged(3, PRIV_M);
  pt.map(0x5000n, DATA, RWX_AD);
  writeU64(m, DATA, 77n);
  setMstatus(m, MSTATUS.MPRV | (PRIV_S << 11));
  m.hart.resync();
  assert.equal(load(m, 0x5000n, 8), 77n);
  assert.equal(m.hart.fetchHost(RAM + 0x40, 0), RAM + 0x40 - RAM_GPA_BASE + RAM_HOST_BASE);
  setMstatus(m, MSTATUS.MPRV | (PRIV_M << 11));
  m.hart.resync();
  assert.equal(load(m, BigInt(DATA), 8), 77n, 'MPP = M: no translation');
});

test('a page table outside RAM is an access fault', () => {
  const m = makeHart();
  csrWrite(m, CSR.SATP, (8n << 60n) | 0x10000n);
  setPriv(m, PRIV_S);
  assert.equal(load(m, 0x1000n, 4), undefined);
  expectFault(m, CAUSE.LOAD_ACCESS, 0x1000n);
});

test('the TLB keeps a translation until sfence.vma, satp write or privilege change', () => {
  const { m, pt } = paged();
  writeU64(m, DATA, 1n);
  writeU64(m, DATA + 0x1000, 2n);
  const at = pt.map(0x9000n, DATA, RWX_AD);
  assert.equal(load(m, 0x9000n, 8), 1n);
  pt.map(0x9000n, DATA + 0x1000, RWX_AD);
  assert.equal(load(m, 0x9000n, 8), 1n, 'stale until sfence.vma');
  m.hart.sfenceVma(...halves(0xa000n), true, 0, false, 0);
  assert.equal(load(m, 0x9000n, 8), 1n, 'another page flushed');
  m.hart.sfenceVma(...halves(0x9000n), true, 0, false, 0);
  assert.equal(load(m, 0x9000n, 8), 2n);
  writeU64(m, at, 0n);
  m.hart.sfenceVma(0, 0, false, 0, false, 0);
  assert.equal(load(m, 0x9000n, 8), undefined);
});

test('no store TLB entry for a code page; a store there invalidates the page', () => {
  const { m, pt } = paged();
  pt.map(0xb000n, DATA, RWX_AD);
  const invalidated: number[] = [];
  m.hart.setCodeCacheHooks({ invalidatePage: (p) => invalidated.push(p), invalidateAll: () => {} });
  m.dv.setUint8(CODE_PAGE_MAP_BASE + (DATA - RAM_GPA_BASE) / 4096, 1);
  assert.ok(store(m, 0xb008n, 4, 1n));
  assert.deepEqual(invalidated, [DATA / 4096]);
  const e = tlbEntry(m, TLB_STORE, 0xb000);
  assert.equal(m.dv.getInt32(e, true), -1);
  m.dv.setUint8(CODE_PAGE_MAP_BASE + (DATA - RAM_GPA_BASE) / 4096, 0);
  assert.ok(store(m, 0xb008n, 4, 1n));
  assert.equal(m.dv.getInt32(e, true), 0xb);
  assert.equal(invalidated.length, 1);
});

test('a full sfence.vma drops every entry, after few fills and after many', () => {
  for (const pages of [3, 100]) {
    const { m, pt } = paged();
    const ptes: number[] = [];
    for (let p = 0; p < pages; p++) {
      ptes.push(pt.map(BigInt(0x100_0000 + p * 4096), DATA, RWX_AD));
      assert.ok(store(m, BigInt(0x100_0000 + p * 4096), 1, 1n));
    }
    assert.ok(load(m, BigInt(0x100_0000), 1) !== undefined);
    assert.ok(m.hart.fetchHost(0x100_0000, 0) > 0);
    m.hart.sfenceVma(0, 0, false, 0, false, 0);
    const live = [];
    for (let e = tlbBase(0); e < tlbBase(0) + TLB_STRIDE; e += 16) {
      if (m.dv.getInt32(e, true) !== -1 || m.dv.getInt32(e + 4, true) !== -1) live.push(e);
    }
    assert.deepEqual(live, [], `${pages} pages`);
    writeU64(m, ptes[pages - 1], 0n);
    assert.equal(load(m, BigInt(0x100_0000 + (pages - 1) * 4096), 1), undefined);
  }
});

test('each translation context keeps a TLB set of its own; a fifth empties the least recently used', () => {
  const { m, pt } = paged();
  writeU64(m, DATA, 1n);
  writeU64(m, DATA + 0x1000, 2n);
  const at = pt.map(0x9000n, DATA, RWX_AD);
  // S-mode with each combination of SUM and MXR: four contexts, as many as there are sets.
  const contexts = [0, MSTATUS.SUM, MSTATUS.MXR, MSTATUS.SUM | MSTATUS.MXR];
  const enter = (bits: number) => csrWrite(m, CSR.SSTATUS, BigInt(bits));
  for (const bits of contexts) {
    enter(bits);
    assert.equal(load(m, 0x9000n, 8), 1n);
  }
  writeU64(m, at, readU64(m, at) + (1n << 10n)); // now DATA + 0x1000, no sfence.vma yet
  for (const bits of contexts) {
    enter(bits);
    assert.equal(load(m, 0x9000n, 8), 1n, `context ${bits.toString(16)} kept its (stale) entry`);
  }
  m.hart.ecall(); // M-mode, a fifth context, takes the set of the least recently used one (S without SUM and MXR)
  m.hart.mret(0);
  enter(MSTATUS.MXR);
  assert.equal(load(m, 0x9000n, 8), 1n, 'still kept');
  enter(0);
  assert.equal(load(m, 0x9000n, 8), 2n, 'its set was emptied and refilled by a walk');
  m.hart.sfenceVma(0, 0, false, 0, false, 0);
  enter(MSTATUS.MXR);
  assert.equal(load(m, 0x9000n, 8), 2n, 'a full sfence.vma empties every set');
});

test('entries of a context are put back when it is entered again, until a flush', () => {
  const { m, pt } = paged();
  writeU64(m, DATA, 1n);
  writeU64(m, DATA + 0x1000, 2n);
  const at = pt.map(0x9000n, DATA, RWX_AD);
  assert.equal(load(m, 0x9000n, 8), 1n);
  writeU64(m, at, readU64(m, at) + (1n << 10n)); // now DATA + 0x1000, no sfence.vma yet
  m.hart.ecall(); // S → M: the S entries are saved
  assert.equal(load(m, BigInt(DATA), 8), 1n);
  m.hart.mret(0); // back to S (MPP = S): they come back
  assert.equal(load(m, 0x9000n, 8), 1n, 'the saved (stale) entry is used, as a real TLB may');
  m.hart.ecall();
  m.hart.sfenceVma(...halves(0x9000n), true, 0, false, 0); // in M: drops the page from the saved entries
  m.hart.mret(0);
  assert.equal(load(m, 0x9000n, 8), 2n);
});

test("a kept store entry is dropped when its page becomes a code page while another context runs", () => {
  const { m, pt } = paged();
  pt.map(0xd000n, DATA, RWX_AD);
  assert.ok(store(m, 0xd000n, 8, 5n));
  const e = tlbEntry(m, TLB_STORE, 0xd000);
  assert.equal(m.dv.getInt32(e, true), 0xd);
  m.hart.ecall();
  assert.notEqual(tlbEntry(m, TLB_STORE, 0xd000), e, 'M-mode has a TLB set of its own');
  assert.equal(m.dv.getInt32(e, true), 0xd, 'the S entry is kept');
  // What the JIT does when it translates code on the page (jit/code-cache.ts markCodePage).
  const page = (DATA - RAM_GPA_BASE) / 4096;
  m.dv.setUint8(CODE_PAGE_MAP_BASE + page, 1);
  m.hart.dropStorePage(page);
  m.hart.mret(0);
  assert.equal(tlbEntry(m, TLB_STORE, 0xd000), e, 'back in the S set');
  assert.equal(m.dv.getInt32(e, true), -1);
  assert.equal(m.dv.getInt32(tlbEntry(m, TLB_LOAD, 0xd000), true), -1, 'no load entry was made for this page either');
  const invalidated: number[] = [];
  m.hart.setCodeCacheHooks({ invalidatePage: (p) => invalidated.push(p), invalidateAll: () => {} });
  assert.ok(store(m, 0xd008n, 8, 6n));
  assert.deepEqual(invalidated, [DATA / 4096], 'the store took the slow path');
});
