/**
 * Trap entry and exit: synchronous exceptions, interrupts (selection by the
 * privileged spec's priority rules) and the mret/sret state transitions.
 *
 * Entry: a trap from privilege p goes to S-mode when p <= S and the cause's
 * bit is set in medeleg (exceptions) or mideleg (interrupts), else to M-mode.
 * The target mode's epc/cause/tval are written, xPIE takes xIE, xIE is cleared,
 * xPP records p, and PC becomes the trap vector (base + 4 * cause for
 * interrupts when the vector mode is 1). After every entry or return the
 * `onContextChange` callback lets the MMU flush the TLB if the translation
 * context changed (privilege, MPP under MPRV).
 *
 * Interrupt selection: pending = mip & mie. Interrupts not delegated target
 * M-mode and are enabled when p < M or mstatus.MIE; delegated ones target
 * S-mode and are enabled when p < S or (p = S and mstatus.SIE); M-targeted
 * interrupts win over S-targeted ones, and within one target the order is
 * MEI, MSI, MTI, SEI, SSI, STI.
 *
 * The callers check legality (mret only in M, sret not in U nor under TSR).
 */
import { HS, PRIV_M, PRIV_S, PRIV_U } from '../layout.js';
import { CSR_OFF, IRQ, MSTATUS } from './csr-defs.js';
import type { HartState } from './state.js';

const PRIORITY = [IRQ.MEI, IRQ.MSI, IRQ.MTI, IRQ.SEI, IRQ.SSI, IRQ.STI];
const TWO32 = 0x1_0000_0000;

export class Traps {
  constructor(
    private readonly st: HartState,
    private readonly onContextChange: () => void,
  ) {}

  /** Takes synchronous exception `cause` with tval (lo, hi) at the current PC. */
  exception(cause: number, tvalLo: number, tvalHi: number): false {
    this.enter(cause, false, tvalLo, tvalHi);
    return false;
  }

  /** The cause number of the interrupt to take now, or -1. */
  pendingInterrupt(): number {
    const st = this.st;
    const pending = st.mip() & st.get32(CSR_OFF.MIE);
    if (pending === 0) return -1;
    const priv = st.priv;
    const status = st.mstatus;
    const mideleg = st.get32(CSR_OFF.MIDELEG);
    const mEnabled = priv < PRIV_M || (status & MSTATUS.MIE) !== 0;
    const toM = mEnabled ? pending & ~mideleg : 0;
    if (toM !== 0) return highestPriority(toM);
    const sEnabled = priv < PRIV_S || (priv === PRIV_S && (status & MSTATUS.SIE) !== 0);
    const toS = sEnabled ? pending & mideleg : 0;
    return toS !== 0 ? highestPriority(toS) : -1;
  }

  /** Takes the pending enabled interrupt, if any. */
  takeInterrupt(): boolean {
    const cause = this.pendingInterrupt();
    if (cause < 0) return false;
    this.enter(cause, true, 0, 0);
    return true;
  }

  /** mret: returns to mstatus.MPP at mepc. */
  mret(): void {
    const st = this.st;
    let status = st.mstatus;
    const target = (status & MSTATUS.MPP) >>> MSTATUS.MPP_SHIFT;
    status = setBit(status, MSTATUS.MIE, (status & MSTATUS.MPIE) !== 0) | MSTATUS.MPIE;
    status &= ~MSTATUS.MPP; // MPP = U
    if (target !== PRIV_M) status &= ~MSTATUS.MPRV;
    this.leave(status, target, CSR_OFF.MEPC);
  }

  /** sret: returns to mstatus.SPP at sepc. */
  sret(): void {
    const st = this.st;
    let status = st.mstatus;
    const target = (status & MSTATUS.SPP) !== 0 ? PRIV_S : PRIV_U;
    status = setBit(status, MSTATUS.SIE, (status & MSTATUS.SPIE) !== 0) | MSTATUS.SPIE;
    status &= ~(MSTATUS.SPP | MSTATUS.MPRV);
    this.leave(status, target, CSR_OFF.SEPC);
  }

  private leave(status: number, target: number, epcOff: number): void {
    const st = this.st;
    st.mstatus = status;
    st.priv = target;
    st.setPc(st.lo(epcOff), st.hi(epcOff));
    this.onContextChange();
  }

  private enter(cause: number, interrupt: boolean, tvalLo: number, tvalHi: number): void {
    const st = this.st;
    const priv = st.priv;
    const deleg = st.get32(interrupt ? CSR_OFF.MIDELEG : CSR_OFF.MEDELEG);
    const toS = priv <= PRIV_S && ((deleg >>> cause) & 1) !== 0;
    let status = st.mstatus;
    let tvecOff: number;
    if (toS) {
      st.set64(CSR_OFF.SCAUSE, cause, interrupt ? 0x8000_0000 : 0);
      st.set64(CSR_OFF.SEPC, st.pcLo(), st.pcHi());
      st.set64(CSR_OFF.STVAL, tvalLo, tvalHi);
      status = setBit(status, MSTATUS.SPIE, (status & MSTATUS.SIE) !== 0) & ~MSTATUS.SIE;
      status = setBit(status, MSTATUS.SPP, priv === PRIV_S);
      st.priv = PRIV_S;
      tvecOff = CSR_OFF.STVEC;
    } else {
      st.set64(CSR_OFF.MCAUSE, cause, interrupt ? 0x8000_0000 : 0);
      st.set64(CSR_OFF.MEPC, st.pcLo(), st.pcHi());
      st.set64(CSR_OFF.MTVAL, tvalLo, tvalHi);
      status = setBit(status, MSTATUS.MPIE, (status & MSTATUS.MIE) !== 0) & ~MSTATUS.MIE;
      status = (status & ~MSTATUS.MPP) | (priv << MSTATUS.MPP_SHIFT);
      st.priv = PRIV_M;
      tvecOff = CSR_OFF.MTVEC;
    }
    st.mstatus = status;
    const tvecLo = st.lo(tvecOff);
    const vectored = interrupt && (tvecLo & 3) === 1;
    const target = (tvecLo & ~3) >>> 0;
    const pcLo = vectored ? target + 4 * cause : target;
    st.set64(HS.PC, pcLo, pcLo >= TWO32 ? st.hi(tvecOff) + 1 : st.hi(tvecOff));
    this.onContextChange();
  }
}

function highestPriority(bits: number): number {
  for (const irq of PRIORITY) if ((bits >>> irq) & 1) return irq;
  return -1;
}

function setBit(word: number, bit: number, on: boolean): number {
  return on ? word | bit : word & ~bit;
}
