/**
 * Hostile guests: random CSR traffic in every mode and random page tables with
 * random accesses must only ever produce guest traps, never host exceptions,
 * and the hart must stay in a legal state (a valid privilege, PC where it
 * should be).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MemSize } from '../../src/emulator/riscv/hart-api.js';
import { HS, PRIV_M } from '../../src/emulator/riscv/layout.js';
import { CSR, CSR_OFF } from '../../src/emulator/riscv/priv/csr-defs.js';
import { TABLE_POOL } from './page-tables.js';
import { RAM, csrWrite, makeHart, priv, setScratch0, writeU64 } from './setup.js';

/** xorshift64* as BigInt: deterministic and reproducible (tests only). */
function rng(seed: bigint): () => bigint {
  let x = seed;
  return () => {
    x ^= x >> 12n;
    x ^= BigInt.asUintN(64, x << 25n);
    x ^= x >> 27n;
    return BigInt.asUintN(64, x * 0x2545f4914f6cdd1dn);
  };
}

const PRIVS = [0, 1, 3];
const half = (v: bigint): [number, number] => [Number(v & 0xffff_ffffn) | 0, Number(BigInt.asIntN(32, v >> 32n))];

test('random CSR reads and writes in every mode: traps or values, never host exceptions', () => {
  const next = rng(0x1234_5678_9abc_def1n);
  const m = makeHart();
  for (let i = 0; i < 40_000; i++) {
    const r = next();
    m.dv.setInt32(m.base + HS.PRIV, PRIVS[Number(r % 3n)], true);
    m.hart.resync();
    const csr = i % 2 === 0 ? Number((r >> 8n) & 0xfffn) : [...Object.values(CSR)][Number(r >> 40n) % Object.keys(CSR).length];
    setScratch0(m, next());
    m.hart.csrAccess(csr, Number((r >> 20n) % 3n) as 0 | 1 | 2, (r & 0x10n) !== 0n, 0x73);
    assert.ok(PRIVS.includes(priv(m)));
    if (i % 997 === 0) m.hart.checkInterrupts();
  }
  const satpMode = m.dv.getUint32(m.base + CSR_OFF.SATP + 4, true) >>> 28;
  assert.ok([0, 8, 9].includes(satpMode));
});

test('random page tables and random accesses: only page, access and misaligned faults', () => {
  const next = rng(0x0ddb_a11c_afe5_eed5n);
  const m = makeHart();
  csrWrite(m, CSR.MTVEC, BigInt(RAM));
  const tablePages = 16;
  for (let round = 0; round < 30; round++) {
    for (let i = 0; i < tablePages * 512; i++) {
      const r = next();
      // pointers into the pool, leaves into RAM with random flags, and some garbage
      const kind = r % 8n;
      const pool = BigInt(TABLE_POOL / 4096);
      const ppn = kind === 0n ? r >> 10n : kind < 4n ? pool + ((r >> 20n) % BigInt(tablePages)) : pool + ((r >> 20n) % 0x100n);
      const flags = kind < 4n ? 1n : (r >> 12n) & 0x3ffn;
      writeU64(m, TABLE_POOL + i * 8, (ppn << 10n) | flags | (kind === 0n ? r & (1n << 63n) : 0n));
    }
    const mode = round % 2 === 0 ? 8n : 9n;
    csrWrite(m, CSR.SATP, (mode << 60n) | BigInt(TABLE_POOL / 4096 + (round % tablePages)));
    csrWrite(m, CSR.MSTATUS, next() & 0x7e_1aaan);
    for (let i = 0; i < 3000; i++) {
      const r = next();
      m.dv.setInt32(m.base + HS.PRIV, PRIVS[Number(r % 3n)], true);
      m.hart.resync();
      const va = r & 1n ? next() : next() & 0x7f_ffff_ffffn;
      const [lo, hi] = half(BigInt.asIntN(64, va));
      const size = (1 << Number((r >> 4n) % 4n)) as MemSize;
      setScratch0(m, r);
      switch (Number((r >> 8n) % 6n)) {
        case 0:
          m.hart.load(lo, hi, size);
          break;
        case 1:
          m.hart.store(lo, hi, size);
          break;
        case 2:
          m.hart.fetchHost(lo, hi);
          break;
        case 3:
          m.hart.amo('maxu', lo, hi, size < 8 ? 4 : 8);
          break;
        case 4:
          m.hart.loadReserved(lo, hi, 8);
          m.hart.storeConditional(lo, hi, 8);
          break;
        default:
          m.hart.sfenceVma(lo, hi, (r & 0x100n) !== 0n, 0, false, 0x12000073);
      }
      if (priv(m) === PRIV_M) {
        const cause = m.dv.getUint32(m.base + CSR_OFF.MCAUSE, true);
        assert.ok([0, 1, 2, 4, 5, 6, 7, 12, 13, 15].includes(cause), `cause ${cause}`);
      }
    }
  }
});
