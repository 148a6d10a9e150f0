/**
 * How a hart begins running guest code, in the two boot modes of a machine:
 *
 *   - with tsemu's SBI (no firmware), a hart enters S-mode the way an SBI
 *     implementation starts a kernel: a0 = hart id, a1 = the opaque value
 *     (the FDT address at boot), satp = 0, interrupts off, at the given pc.
 *     tsemu plays M-mode, so the M-mode CSRs are set as such firmware would:
 *     every delegable exception but ecall-from-S goes to S (the SBI serves
 *     those), the S-level interrupts are delegated, and S may read the
 *     cycle/time/instret counters.
 *   - with firmware (--bios), every hart starts in M-mode at the firmware's
 *     entry with a0 = hart id, a1 = FDT address and a2 = the fw_dynamic info
 *     block, as a reset vector hands over to OpenSBI's fw_dynamic.
 *
 * Both reset the hart first (hart.reset: CSRs cleared, TLB empty).
 */
import type { Hart } from '../riscv/hart.js';
import { HS, PRIV_S } from '../riscv/layout.js';
import { CAUSE, CSR, DELEGABLE_EXCEPTIONS, S_INTERRUPTS } from '../riscv/priv/csr-defs.js';

const X_A0 = HS.X + 10 * 8;
/**
 * CY, TM and IR, in mcounteren and scounteren: firmware (OpenSBI) hands over with
 * both open, and a kernel without a PMU driver never writes scounteren, so
 * without this its user programs' rdtime (the vDSO's clock_gettime) would trap.
 */
const COUNTERS_FOR_S = 0b111;

function setRegister64(hart: Hart, off: number, lo: number, hi: number): void {
  const dv = new DataView(hart.memory.buffer);
  dv.setInt32(hart.stateBase + off, lo | 0, true);
  dv.setInt32(hart.stateBase + off + 4, hi | 0, true);
}

/** Writes an M-mode CSR through the hart's own CSR rules (the hart must be in M-mode). */
function writeCsr(hart: Hart, csr: number, value: number): void {
  setRegister64(hart, HS.SCRATCH0, value, 0);
  if (!hart.csrAccess(csr, 0, true, 0)) throw new Error(`hart ${hart.id}: cannot write CSR 0x${csr.toString(16)}`);
}

/** Starts `hart` in S-mode at pc (halves) with a0 = hart id and a1 = opaque (halves). */
export function enterSupervisor(hart: Hart, pcLo: number, pcHi: number, opaqueLo: number, opaqueHi: number): void {
  hart.reset(0);
  writeCsr(hart, CSR.MEDELEG, DELEGABLE_EXCEPTIONS & ~(1 << CAUSE.ECALL_S));
  writeCsr(hart, CSR.MIDELEG, S_INTERRUPTS);
  writeCsr(hart, CSR.MCOUNTEREN, COUNTERS_FOR_S);
  writeCsr(hart, CSR.SCOUNTEREN, COUNTERS_FOR_S);
  setRegister64(hart, X_A0, hart.id, 0);
  setRegister64(hart, X_A0 + 8, opaqueLo, opaqueHi);
  setRegister64(hart, HS.PC, pcLo, pcHi);
  new DataView(hart.memory.buffer).setInt32(hart.stateBase + HS.PRIV, PRIV_S, true);
  hart.resync();
}

/** Starts `hart` in M-mode at `pc` with a0 = hart id, a1 = fdt, a2 = info (addresses below 2^32 + RAM). */
export function enterFirmware(hart: Hart, pc: number, fdt: number, info: number): void {
  hart.reset(pc);
  const two32 = 0x1_0000_0000;
  setRegister64(hart, X_A0, hart.id, 0);
  setRegister64(hart, X_A0 + 8, fdt % two32, Math.floor(fdt / two32));
  setRegister64(hart, X_A0 + 16, info % two32, Math.floor(info / two32));
}
