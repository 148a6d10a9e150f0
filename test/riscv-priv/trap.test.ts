import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HS, PRIV_M, PRIV_S, PRIV_U } from '../../src/emulator/riscv/layout.js';
import { CAUSE, CSR, CSR_OFF, MSTATUS } from '../../src/emulator/riscv/priv/csr-defs.js';
import {
  type TestMachine, csrRead, csrWrite, makeHart, mcause, mepc, mstatus, mtval, pc, priv, scause, setMstatus, setPc, slot, stval,
} from './setup.js';

const MTVEC = 0x8000_1000n;
const STVEC = 0x8000_2000n;
const INTERRUPT = 1n << 63n;

function setPriv(m: TestMachine, p: number): void {
  m.dv.setInt32(m.base + HS.PRIV, p, true);
}

function withVectors(): TestMachine {
  const m = makeHart();
  csrWrite(m, CSR.MTVEC, MTVEC);
  csrWrite(m, CSR.STVEC, STVEC);
  return m;
}

function raiseMip(m: TestMachine, bits: number): void {
  Atomics.or(new Int32Array(m.memory.buffer), (m.base + HS.MIP) >> 2, bits);
}

test('an exception from S goes to M without delegation: mepc, mcause, mtval, MPP, MPIE', () => {
  const m = withVectors();
  csrWrite(m, CSR.MSTATUS, BigInt(MSTATUS.MIE));
  setPriv(m, PRIV_S);
  setPc(m, 0x8000_0040n);
  assert.equal(m.hart.raiseException(CAUSE.LOAD_PAGE_FAULT, 0x1234, 0x5), false);
  assert.equal(priv(m), PRIV_M);
  assert.equal(pc(m), MTVEC);
  assert.equal(mepc(m), 0x8000_0040n);
  assert.equal(mcause(m), 13n);
  assert.equal(mtval(m), 0x5_0000_1234n);
  const status = Number(csrRead(m, CSR.MSTATUS)! & 0xffffn);
  assert.equal((status & MSTATUS.MPP) >> 11, PRIV_S);
  assert.equal(status & MSTATUS.MIE, 0);
  assert.equal(status & MSTATUS.MPIE, MSTATUS.MPIE);
});

test('medeleg delegates exceptions from S and U to S-mode, never from M', () => {
  const m = withVectors();
  csrWrite(m, CSR.MEDELEG, 1n << 8n);
  csrWrite(m, CSR.MSTATUS, BigInt(MSTATUS.SIE));
  setPriv(m, PRIV_U);
  setPc(m, 0x1000n);
  assert.equal(m.hart.ecall(), false);
  assert.equal(priv(m), PRIV_S);
  assert.equal(pc(m), STVEC);
  assert.equal(scause(m), 8n);
  assert.equal(slot(m, CSR_OFF.SEPC), 0x1000n);
  const status = Number(mstatus(m) & 0xffff_ffffn);
  assert.equal(status & MSTATUS.SPP, 0, 'SPP = U');
  assert.equal(status & MSTATUS.SPIE, MSTATUS.SPIE);
  assert.equal(status & MSTATUS.SIE, 0);
  // ecall from S is cause 9, not delegated here
  assert.equal(m.hart.ecall(), false);
  assert.equal(priv(m), PRIV_M);
  assert.equal(mcause(m), 9n);
  // from M, delegation does not apply
  csrWrite(m, CSR.MEDELEG, 1n << 2n);
  m.hart.raiseException(CAUSE.ILLEGAL_INSTRUCTION, 0, 0);
  assert.equal(mcause(m), 2n);
  assert.equal(priv(m), PRIV_M);
});

test('mret returns to MPP at mepc, restores MIE, clears MPRV when leaving M; sret likewise with SPP', () => {
  const m = withVectors();
  csrWrite(m, CSR.MSTATUS, BigInt(MSTATUS.MPIE | MSTATUS.MPRV | (PRIV_S << 11)));
  csrWrite(m, CSR.MEPC, 0x8000_4000n);
  assert.equal(m.hart.mret(0x30200073), true);
  assert.equal(priv(m), PRIV_S);
  assert.equal(pc(m), 0x8000_4000n);
  let status = Number(mstatus(m) & 0xffff_ffffn);
  assert.equal(status & MSTATUS.MIE, MSTATUS.MIE);
  assert.equal(status & MSTATUS.MPIE, MSTATUS.MPIE);
  assert.equal(status & MSTATUS.MPP, 0);
  assert.equal(status & MSTATUS.MPRV, 0);
  assert.equal(m.hart.mret(0x30200073), false, 'mret from S is illegal');
  assert.equal(mcause(m), 2n);
  assert.equal(mtval(m), 0x30200073n);
  // sret from S to U
  csrWrite(m, CSR.MSTATUS, BigInt(MSTATUS.SPIE));
  csrWrite(m, CSR.SEPC, 0x4000n);
  setPriv(m, PRIV_S);
  assert.equal(m.hart.sret(0x10200073), true);
  assert.equal(priv(m), PRIV_U);
  assert.equal(pc(m), 0x4000n);
  status = Number(mstatus(m) & 0xffff_ffffn);
  assert.equal(status & (MSTATUS.SIE | MSTATUS.SPIE), MSTATUS.SIE | MSTATUS.SPIE);
  setPriv(m, PRIV_U);
  assert.equal(m.hart.sret(0x10200073), false, 'sret from U is illegal');
  setPriv(m, PRIV_M);
  csrWrite(m, CSR.MSTATUS, BigInt(MSTATUS.TSR));
  setPriv(m, PRIV_S);
  assert.equal(m.hart.sret(0x10200073), false, 'TSR');
  assert.equal(mcause(m), 2n);
});

test('wfi: illegal in U and under TW in S; otherwise it leaves PC to the engine', () => {
  const m = withVectors();
  setPc(m, 0x8000_0100n);
  assert.equal(m.hart.wfi(0x10500073), true);
  assert.equal(pc(m), 0x8000_0100n);
  setPriv(m, PRIV_S);
  assert.equal(m.hart.wfi(0x10500073), true);
  setPriv(m, PRIV_U);
  assert.equal(m.hart.wfi(0x10500073), false);
  assert.equal(mcause(m), 2n);
  csrWrite(m, CSR.MSTATUS, BigInt(MSTATUS.TW));
  setPriv(m, PRIV_S);
  assert.equal(m.hart.wfi(0x10500073), false);
});

test('sfence.vma is illegal in U and under TVM in S', () => {
  const m = withVectors();
  setPriv(m, PRIV_S);
  assert.equal(m.hart.sfenceVma(0, 0, false, 0, false, 0x12000073), true);
  setPriv(m, PRIV_U);
  assert.equal(m.hart.sfenceVma(0, 0, false, 0, false, 0x12000073), false);
  csrWrite(m, CSR.MSTATUS, BigInt(MSTATUS.TVM));
  setPriv(m, PRIV_S);
  assert.equal(m.hart.sfenceVma(0, 0, false, 0, false, 0x12000073), false);
  assert.equal(mtval(m), 0x12000073n);
});

test('ebreak: breakpoint with the pc as tval; ecall from M is cause 11', () => {
  const m = withVectors();
  setPc(m, 0x8000_0008n);
  assert.equal(m.hart.ebreak(), false);
  assert.equal(mcause(m), 3n);
  assert.equal(mtval(m), 0x8000_0008n);
  m.hart.ecall();
  assert.equal(mcause(m), 11n);
});

test('the sbi hook serves ecall from S (PC = pc + 4) and only from S', () => {
  let calls = 0;
  const m = makeHart({ sbi: () => (calls++, true) });
  csrWrite(m, CSR.MTVEC, MTVEC);
  setPriv(m, PRIV_S);
  setPc(m, 0x8020_0000n);
  assert.equal(m.hart.ecall(), true);
  assert.equal(pc(m), 0x8020_0004n);
  assert.equal(priv(m), PRIV_S);
  setPriv(m, PRIV_U);
  assert.equal(m.hart.ecall(), false);
  assert.equal(calls, 1);
  const declined = makeHart({ sbi: () => false });
  declined.dv.setInt32(declined.base + HS.PRIV, PRIV_S, true);
  assert.equal(declined.hart.ecall(), false);
  assert.equal(mcause(declined), 9n);
});

test('interrupts: masked by mie and mstatus.MIE in M, always enabled from lower modes', () => {
  const m = withVectors();
  raiseMip(m, 1 << 7);
  assert.equal(m.hart.checkInterrupts(), false, 'mie.MTIE = 0');
  csrWrite(m, CSR.MIE, 1n << 7n);
  assert.equal(m.hart.checkInterrupts(), false, 'mstatus.MIE = 0 in M');
  assert.equal(m.hart.wakeable(), true, 'but WFI would wake');
  setPriv(m, PRIV_S);
  setPc(m, 0x8000_0100n);
  assert.equal(m.hart.checkInterrupts(), true);
  assert.equal(mcause(m), INTERRUPT | 7n);
  assert.equal(mepc(m), 0x8000_0100n);
  assert.equal(pc(m), MTVEC);
  assert.equal(priv(m), PRIV_M);
});

test('vectored mtvec: interrupts jump to base + 4 * cause, exceptions to base', () => {
  const m = makeHart();
  csrWrite(m, CSR.MTVEC, MTVEC | 1n);
  csrWrite(m, CSR.MIE, 1n << 3n);
  csrWrite(m, CSR.MSTATUS, BigInt(MSTATUS.MIE));
  raiseMip(m, 1 << 3);
  assert.equal(m.hart.checkInterrupts(), true);
  assert.equal(pc(m), MTVEC + 12n);
  m.hart.raiseException(CAUSE.ILLEGAL_INSTRUCTION, 0, 0);
  assert.equal(pc(m), MTVEC);
});

test('priority: MEI > MSI > MTI > SEI > SSI > STI; M-targeted before S-targeted', () => {
  const m = withVectors();
  csrWrite(m, CSR.MIE, 0xaaan);
  csrWrite(m, CSR.MIP, 0x222n);
  raiseMip(m, 0x888);
  setPriv(m, PRIV_U);
  const order: bigint[] = [];
  for (let i = 0; i < 6; i++) {
    setPriv(m, PRIV_U);
    assert.equal(m.hart.checkInterrupts(), true);
    const cause = mcause(m) & 0xffn;
    order.push(cause);
    csrWrite(m, CSR.MIE, csrRead(m, CSR.MIE)! & ~(1n << cause));
  }
  assert.deepEqual(order, [11n, 3n, 7n, 9n, 1n, 5n]);
  // with delegation, an S-level interrupt waits for the M-level one even when it was raised first
  csrWrite(m, CSR.MIE, 0xaaan);
  csrWrite(m, CSR.MIDELEG, 0x222n);
  setMstatus(m, MSTATUS.SIE);
  setPriv(m, PRIV_S);
  assert.equal(m.hart.checkInterrupts(), true);
  assert.equal(mcause(m), INTERRUPT | 11n);
});

test('delegated interrupts: taken in S with SIE or from U; never taken in M', () => {
  const m = withVectors();
  csrWrite(m, CSR.MIDELEG, 0x222n);
  csrWrite(m, CSR.MIE, 0x222n);
  csrWrite(m, CSR.MSTATUS, BigInt(MSTATUS.MIE | MSTATUS.SIE));
  csrWrite(m, CSR.MIP, 1n << 9n);
  assert.equal(m.hart.checkInterrupts(), false, 'in M');
  setMstatus(m, 0);
  setPriv(m, PRIV_S);
  assert.equal(m.hart.checkInterrupts(), false, 'S with SIE = 0');
  setPriv(m, PRIV_U);
  setPc(m, 0x2000n);
  assert.equal(m.hart.checkInterrupts(), true);
  assert.equal(priv(m), PRIV_S);
  assert.equal(scause(m), INTERRUPT | 9n);
  assert.equal(stval(m), 0n);
  assert.equal(pc(m), STVEC);
});

test('FLUSH_REQUEST is consumed by checkInterrupts: TLB emptied, translated code dropped', () => {
  const m = withVectors();
  let dropped = 0;
  m.hart.setCodeCacheHooks({ invalidatePage: () => {}, invalidateAll: () => dropped++ });
  Atomics.store(new Int32Array(m.memory.buffer), (m.base + CSR_OFF.FLUSH_REQUEST) >> 2, 1);
  m.hart.checkInterrupts();
  assert.equal(dropped, 1);
  m.hart.checkInterrupts();
  assert.equal(dropped, 1);
});
