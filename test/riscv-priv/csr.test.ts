import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HS, PRIV_S, PRIV_U } from '../../src/emulator/riscv/layout.js';
import { CAUSE, CSR, CSR_OFF, MSTATUS } from '../../src/emulator/riscv/priv/csr-defs.js';
import { csr, csrRead, csrWrite, makeHart, mcause, mtval, slot } from './setup.js';

const setPriv = (m: ReturnType<typeof makeHart>, p: number) => m.dv.setInt32(m.base + HS.PRIV, p, true);

test('misa says RV64 IMAFDC + S + U; identity CSRs', () => {
  const m = makeHart({ id: 0 });
  const misa = csrRead(m, CSR.MISA)!;
  assert.equal(misa >> 62n, 2n);
  const letters = [...'ACDFIMSU'].map((c) => 1n << BigInt(c.charCodeAt(0) - 65));
  assert.equal(misa & 0x3ff_ffffn, letters.reduce((a, b) => a | b));
  assert.equal(csrRead(m, CSR.MHARTID), 0n);
  assert.equal(csrRead(m, CSR.MVENDORID), 0n);
  assert.equal(csrRead(m, CSR.MCONFIGPTR), 0n);
  csrWrite(m, CSR.MISA, 0n);
  assert.equal(csrRead(m, CSR.MISA), misa, 'misa writes are ignored');
});

test('mstatus: UXL/SXL fixed at 64, WARL fields, SD follows FS, sstatus is a view', () => {
  const m = makeHart();
  const initial = csrRead(m, CSR.MSTATUS)!;
  assert.equal((initial >> 32n) & 0xfn, 0xan);
  csrWrite(m, CSR.MSTATUS, 0xffff_ffff_ffff_ffffn);
  const all = csrRead(m, CSR.MSTATUS)!;
  assert.equal(all >> 63n, 1n, 'SD with FS dirty');
  assert.equal((all >> 32n) & 0x3fn, 0xan, 'UXL, SXL fixed; SBE/MBE zero');
  assert.equal(all & BigInt(MSTATUS.MPP), BigInt(MSTATUS.MPP), 'MPP = 3');
  assert.equal(all & BigInt(MSTATUS.VS | MSTATUS.XS | MSTATUS.UBE), 0n);
  csrWrite(m, CSR.MSTATUS, 2n << 11n);
  assert.equal((csrRead(m, CSR.MSTATUS)! >> 11n) & 3n, 3n, 'MPP = 2 keeps the old value');
  csrWrite(m, CSR.MSTATUS, 0n);
  csrWrite(m, CSR.SSTATUS, 0xffff_ffff_ffff_ffffn);
  const s = csrRead(m, CSR.SSTATUS)!;
  assert.equal(s, BigInt(MSTATUS.SIE | MSTATUS.SPIE | MSTATUS.SPP | MSTATUS.FS | MSTATUS.SUM | MSTATUS.MXR) | (2n << 32n) | (1n << 63n));
  const ms = csrRead(m, CSR.MSTATUS)!;
  assert.equal(ms & BigInt(MSTATUS.MIE | MSTATUS.MPP | MSTATUS.TVM), 0n, 'sstatus writes leave M fields');
});

test('csrrs/csrrc set and clear; writes=false never writes', () => {
  const m = makeHart();
  csrWrite(m, CSR.MSCRATCH, 0xf0n);
  assert.equal(csr(m, CSR.MSCRATCH, 1, 0x0fn), 0xf0n);
  assert.equal(csr(m, CSR.MSCRATCH, 2, 0x30n), 0xffn);
  assert.equal(csrRead(m, CSR.MSCRATCH), 0xcfn);
  assert.equal(csr(m, CSR.MSCRATCH, 0, 0x1234_5678_9abc_def0n), 0xcfn);
  assert.equal(csrRead(m, CSR.MSCRATCH), 0x1234_5678_9abc_def0n);
  assert.equal(csr(m, CSR.MHARTID, 1, 0n, false), 0n, 'reading a read-only CSR with csrrs x0 is fine');
  assert.equal(csr(m, CSR.MHARTID, 1, 0n, true), undefined, 'writing it is illegal');
  assert.equal(mcause(m), BigInt(CAUSE.ILLEGAL_INSTRUCTION));
  assert.equal(mtval(m), 0x1234n, 'tval is the instruction');
});

test('privilege checks: M CSRs from S are illegal, unknown CSRs are illegal', () => {
  const m = makeHart();
  setPriv(m, PRIV_S);
  assert.equal(csrRead(m, CSR.MSTATUS), undefined);
  assert.equal(mcause(m), BigInt(CAUSE.ILLEGAL_INSTRUCTION));
  setPriv(m, PRIV_S);
  assert.notEqual(csrRead(m, CSR.SSTATUS), undefined);
  assert.equal(csrRead(m, 0x7c0), undefined);
  setPriv(m, PRIV_U);
  assert.equal(csrRead(m, CSR.SSCRATCH), undefined);
});

test('mepc/sepc bit 0 reads 0; mtvec rejects reserved modes; medeleg/mideleg masks', () => {
  const m = makeHart();
  csrWrite(m, CSR.MEPC, 0x8000_0003n);
  assert.equal(csrRead(m, CSR.MEPC), 0x8000_0002n);
  csrWrite(m, CSR.SEPC, 0xffff_ffff_ffff_ffffn);
  assert.equal(csrRead(m, CSR.SEPC), 0xffff_ffff_ffff_fffen);
  csrWrite(m, CSR.MTVEC, 0x8000_0101n);
  assert.equal(csrRead(m, CSR.MTVEC), 0x8000_0101n);
  csrWrite(m, CSR.MTVEC, 0x8000_0202n);
  assert.equal(csrRead(m, CSR.MTVEC), 0x8000_0101n, 'mode 2 ignored');
  csrWrite(m, CSR.MEDELEG, 0xffff_ffffn);
  assert.equal(csrRead(m, CSR.MEDELEG), 0xb3ffn);
  csrWrite(m, CSR.MIDELEG, 0xffff_ffffn);
  assert.equal(csrRead(m, CSR.MIDELEG), 0x222n);
});

test('mie/sie and mip/sip views through mideleg; SEIP software bit ORs with the line', () => {
  const m = makeHart();
  csrWrite(m, CSR.MIE, 0xffffn);
  assert.equal(csrRead(m, CSR.MIE), 0xaaan);
  assert.equal(csrRead(m, CSR.SIE), 0n);
  csrWrite(m, CSR.MIDELEG, 0x222n);
  assert.equal(csrRead(m, CSR.SIE), 0x222n);
  csrWrite(m, CSR.SIE, 0n);
  assert.equal(csrRead(m, CSR.MIE), 0x888n);
  csrWrite(m, CSR.MIP, 0xffffn);
  assert.equal(csrRead(m, CSR.MIP), 0x222n, 'SSIP, STIP, SEIP writable by M');
  assert.equal(m.dv.getInt32(m.base + HS.MIP, true), 0x22, 'SEIP is kept apart from the shared word');
  Atomics.or(new Int32Array(m.memory.buffer), (m.base + HS.MIP) >> 2, 1 << 11);
  assert.equal(csrRead(m, CSR.MIP), 0xa22n);
  csrWrite(m, CSR.SIP, 0n);
  assert.equal(csrRead(m, CSR.MIP), 0xa20n, 'sip writes only SSIP');
});

test('satp: Sv39/Sv48/Bare accepted, other modes ignored, ASID reads 0; TVM makes S-mode access illegal', () => {
  const m = makeHart();
  csrWrite(m, CSR.SATP, (8n << 60n) | (0xffffn << 44n) | 0x80123n);
  assert.equal(csrRead(m, CSR.SATP), (8n << 60n) | 0x80123n);
  csrWrite(m, CSR.SATP, (10n << 60n) | 5n);
  assert.equal(csrRead(m, CSR.SATP), (8n << 60n) | 0x80123n);
  csrWrite(m, CSR.SATP, (9n << 60n) | 7n);
  assert.equal(csrRead(m, CSR.SATP), (9n << 60n) | 7n);
  csrWrite(m, CSR.MSTATUS, BigInt(MSTATUS.TVM));
  setPriv(m, PRIV_S);
  assert.equal(csrRead(m, CSR.SATP), undefined);
});

test('FP CSRs: illegal with FS off; fcsr composes fflags and frm; writes dirty FS', () => {
  const m = makeHart();
  assert.equal(csrRead(m, CSR.FCSR), undefined);
  csrWrite(m, CSR.MSTATUS, 1n << 13n);
  csrWrite(m, CSR.FCSR, 0xffn);
  assert.equal(m.dv.getInt32(m.base + HS.FFLAGS, true), 0x1f);
  assert.equal(m.dv.getInt32(m.base + HS.FRM, true), 7);
  csrWrite(m, CSR.FRM, 2n);
  assert.equal(csrRead(m, CSR.FCSR), 0x5fn);
  assert.equal(csrRead(m, CSR.FFLAGS), 0x1fn);
  assert.equal(slot(m, CSR_OFF.MSTATUS) >> 63n, 1n, 'SD');
  assert.equal(m.hart.fpEnabled(), true);
});

test('counters: instret from the state block, time from mtime, cycle writable; enables for S and U', () => {
  const m = makeHart();
  m.dv.setBigUint64(m.base + HS.INSTRET, 1000n, true);
  m.setMtime(123456789);
  assert.equal(csrRead(m, CSR.INSTRET), 1000n);
  assert.equal(csrRead(m, CSR.TIME), 123456789n);
  csrWrite(m, CSR.MCYCLE, 5000n);
  m.dv.setBigUint64(m.base + HS.INSTRET, 1010n, true);
  assert.equal(csrRead(m, CSR.CYCLE), 5010n);
  csrWrite(m, CSR.MINSTRET, 7n);
  assert.equal(csrRead(m, CSR.MINSTRET), 7n);
  assert.equal(csrRead(m, CSR.HPMCOUNTER3), 0n);
  setPriv(m, PRIV_S);
  assert.equal(csrRead(m, CSR.TIME), undefined, 'mcounteren.TM = 0');
  setPriv(m, 3);
  csrWrite(m, CSR.MCOUNTEREN, 2n);
  setPriv(m, PRIV_S);
  assert.equal(csrRead(m, CSR.TIME), 123456789n);
  setPriv(m, PRIV_U);
  assert.equal(csrRead(m, CSR.TIME), undefined, 'scounteren.TM = 0');
  setPriv(m, PRIV_S);
  csrWrite(m, CSR.SCOUNTEREN, 2n);
  setPriv(m, PRIV_U);
  assert.equal(csrRead(m, CSR.TIME), 123456789n);
  assert.equal(csrRead(m, CSR.CYCLE), undefined);
});

test('menvcfg/senvcfg keep FIOM only; hpm events and mcountinhibit read 0', () => {
  const m = makeHart();
  csrWrite(m, CSR.MENVCFG, 0xffff_ffff_ffff_ffffn);
  assert.equal(csrRead(m, CSR.MENVCFG), 1n);
  csrWrite(m, CSR.SENVCFG, 0xffn);
  assert.equal(csrRead(m, CSR.SENVCFG), 1n);
  csrWrite(m, CSR.MHPMEVENT3, 5n);
  assert.equal(csrRead(m, CSR.MHPMEVENT3), 0n);
  assert.equal(csrRead(m, CSR.MCOUNTINHIBIT), 0n);
  assert.equal(csrRead(m, 0x3a1), undefined, 'pmpcfg1 does not exist on RV64');
});

test("csrrs/csrrc on mip: SEIP's line is not latched into the software bit; other pending bits are left alone", () => {
  const m = makeHart();
  const word = (m.base + HS.MIP) >> 2;
  const i32 = new Int32Array(m.memory.buffer);
  Atomics.or(i32, word, 1 << 9); // the PLIC raises SEIP
  assert.equal(csr(m, CSR.MIP, 1, 1n << 5n), 0x200n, 'csrs mip, STIP reads the line');
  Atomics.and(i32, word, ~(1 << 9)); // the PLIC lowers it
  assert.equal(csrRead(m, CSR.MIP), 0x20n, 'SEIP did not stick');
  Atomics.or(i32, word, 1 << 1); // another hart's IPI
  csr(m, CSR.MIP, 2, 1n << 5n);
  assert.equal(csrRead(m, CSR.MIP), 0x2n, 'csrc STIP keeps SSIP');
  csr(m, CSR.MIP, 1, 1n << 9n);
  Atomics.or(i32, word, 1 << 9);
  Atomics.and(i32, word, ~(1 << 9));
  assert.equal(csrRead(m, CSR.MIP), 0x202n, 'a software SEIP stays until cleared');
  csr(m, CSR.MIP, 2, 1n << 9n);
  assert.equal(csrRead(m, CSR.MIP), 0x2n);
});
