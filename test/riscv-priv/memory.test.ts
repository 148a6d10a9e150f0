import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HS, RAM_GPA_BASE, RAM_HOST_BASE, TLB_LOAD, TLB_STORE } from '../../src/emulator/riscv/layout.js';
import { CAUSE } from '../../src/emulator/riscv/priv/csr-defs.js';
import {
  MMIO_BASE, RAM, RAM_BYTES, halves, load, makeHart, mcause, mepc, mtval, readU64, setPc, store, tlbEntry, writeU64,
} from './setup.js';

test('M-mode loads and stores of every size reach RAM, little-endian, zero-extended', () => {
  const m = makeHart();
  writeU64(m, RAM + 0x100, 0x8877_6655_4433_2211n);
  assert.equal(load(m, BigInt(RAM + 0x100), 1), 0x11n);
  assert.equal(load(m, BigInt(RAM + 0x101), 2), 0x3322n);
  assert.equal(load(m, BigInt(RAM + 0x104), 4), 0x8877_6655n);
  assert.equal(load(m, BigInt(RAM + 0x100), 8), 0x8877_6655_4433_2211n);
  assert.ok(store(m, BigInt(RAM + 0x200), 8, 0xdead_beef_cafe_f00dn));
  assert.equal(readU64(m, RAM + 0x200), 0xdead_beef_cafe_f00dn);
  assert.ok(store(m, BigInt(RAM + 0x200), 2, 0xffff_1234n));
  assert.equal(readU64(m, RAM + 0x200), 0xdead_beef_cafe_1234n);
});

test('a load fills the load TLB with the host offset of the page; a store fills the store TLB', () => {
  const m = makeHart();
  const va = RAM + 0x3123;
  load(m, BigInt(va), 4);
  const e = tlbEntry(m, TLB_LOAD, va);
  assert.equal(m.dv.getInt32(e, true), va >>> 12);
  assert.equal(m.dv.getInt32(e + 4, true), 0);
  assert.equal((va + m.dv.getInt32(e + 8, true)) >>> 0, va - RAM_GPA_BASE + RAM_HOST_BASE);
  store(m, BigInt(va), 4, 1n);
  const s = tlbEntry(m, TLB_STORE, va);
  assert.equal(m.dv.getInt32(s, true), va >>> 12);
});

test('misaligned accesses are performed, also across a page boundary', () => {
  const m = makeHart();
  assert.ok(store(m, BigInt(RAM + 0xffd), 8, 0x0807_0605_0403_0201n));
  assert.equal(readU64(m, RAM + 0xff8) >> 40n, 0x03_0201n);
  assert.equal(readU64(m, RAM + 0x1000) & 0xff_ffff_ffffn, 0x08_0706_0504n);
  assert.equal(load(m, BigInt(RAM + 0xffd), 8), 0x0807_0605_0403_0201n);
  assert.equal(load(m, BigInt(RAM + 0xfff), 2), 0x0403n);
  assert.equal(load(m, BigInt(RAM + 0x1001), 4), 0x0807_0605n);
});

test('fetchHost returns host offsets of RAM; the fetch TLB serves the next fetch', () => {
  const m = makeHart();
  assert.equal(m.hart.fetchHost(RAM + 0x10, 0), 0x10 + RAM_HOST_BASE);
  assert.equal(m.hart.fetchHost(RAM + 0x20, 0), 0x20 + RAM_HOST_BASE);
});

test('MMIO goes to the bus: 8-byte accesses as one call with two halves', () => {
  const m = makeHart();
  assert.ok(store(m, BigInt(MMIO_BASE + 8), 8, 0x1122_3344_5566_7788n));
  assert.equal(load(m, BigInt(MMIO_BASE + 8), 8), 0x1122_3344_5566_7788n);
  assert.equal(load(m, BigInt(MMIO_BASE + 12), 4), 0x1122_3344n);
  assert.equal(load(m, BigInt(MMIO_BASE + 1), 1), 0n);
  assert.deepEqual(m.mmio.log, ['w8@8', 'r8@8', 'r4@12', 'r1@1']);
});

test('no RAM and no device: access faults with the address in mtval; fetch from MMIO is an access fault', () => {
  const m = makeHart();
  setPc(m, BigInt(RAM + 0x40));
  assert.equal(load(m, 0x2000_0000n, 4), undefined);
  assert.equal(mcause(m), BigInt(CAUSE.LOAD_ACCESS));
  assert.equal(mtval(m), 0x2000_0000n);
  assert.equal(mepc(m), BigInt(RAM + 0x40));
  setPc(m, BigInt(RAM + 0x40));
  assert.equal(store(m, BigInt(RAM + RAM_BYTES), 1, 0n), false);
  assert.equal(mcause(m), BigInt(CAUSE.STORE_ACCESS));
  assert.equal(m.hart.fetchHost(MMIO_BASE, 0), -1);
  assert.equal(mcause(m), BigInt(CAUSE.FETCH_ACCESS));
  assert.equal(load(m, 0x1_0000_0000_0000_0000n - 8n, 8), undefined, 'a huge physical address');
  assert.equal(mcause(m), BigInt(CAUSE.LOAD_ACCESS));
  assert.deepEqual(halves(-8n), [-8, -1]);
});

test('a fault leaves SCRATCH0 and memory untouched across a page boundary', () => {
  const m = makeHart();
  writeU64(m, RAM + RAM_BYTES - 8, 0x1111_1111_1111_1111n);
  assert.equal(store(m, BigInt(RAM + RAM_BYTES - 4), 8, 0n), false);
  assert.equal(readU64(m, RAM + RAM_BYTES - 8), 0x1111_1111_1111_1111n);
  assert.equal(mtval(m), BigInt(RAM + RAM_BYTES), 'tval names the page that faulted');
  assert.equal(m.dv.getInt32(m.base + HS.PRIV, true), 3);
});
