/**
 * The CSR file: reads and writes of every CSR this hart implements, with the
 * privileged spec's access rules.
 *
 * read(csr, write) checks the access first: the address's bits 9:8 give the
 * lowest privilege that may touch it and bits 11:10 = 3 mark it read-only
 * (`write` = the instruction writes); a violation, an unknown
 * address, satp from S-mode under mstatus.TVM, an FP CSR while mstatus.FS is
 * Off, or a counter not enabled by mcounteren/scounteren make the instruction
 * illegal (read() returns false). read() leaves the value in `value` (lo, hi);
 * modify() then performs the csrrw/csrrs/csrrc write with the WARL rules:
 *   mstatus/sstatus  only the implemented fields; MPP = 2 (reserved) keeps the
 *                    old MPP; UXL = SXL = 2 fixed; SD follows FS
 *   mtvec/stvec      modes 0 and 1; a write with mode >= 2 is ignored
 *   mepc/sepc        bit 0 reads 0
 *   medeleg/mideleg  delegable exceptions / the S-level interrupts
 *   mie/sie, mip/sip S-level bits through mideleg; mip's SSIP/STIP are set in
 *                    the shared mip word with Atomics, SEIP in a software bit
 *   satp             Bare, Sv39, Sv48 (other modes: write ignored); ASIDLEN = 0
 *   menvcfg/senvcfg  FIOM only
 *   misa, mhartid.., mconfigptr, hpm counters/events, mcountinhibit: fixed
 * Every write that can change the translation context calls `onContext`
 * (mstatus, sstatus), and satp and PMP writes call `onFlush`.
 */
import { HS, PRIV_S } from '../layout.js';
import {
  ALL_INTERRUPTS,
  CSR,
  CSR_OFF,
  DELEGABLE_EXCEPTIONS,
  MIP_SEIP,
  MIP_SSIP,
  MIP_STIP,
  MISA_LO,
  MISA_HI,
  MSTATUS,
  SATP_MODE,
  S_INTERRUPTS,
} from './csr-defs.js';
import type { Counters } from './counters.js';
import type { Pmp } from './pmp.js';
import { doubleHalves, type HartState } from './state.js';

const MSTATUS_WRITABLE =
  MSTATUS.SIE | MSTATUS.MIE | MSTATUS.SPIE | MSTATUS.MPIE | MSTATUS.SPP | MSTATUS.MPP | MSTATUS.FS |
  MSTATUS.MPRV | MSTATUS.SUM | MSTATUS.MXR | MSTATUS.TVM | MSTATUS.TW | MSTATUS.TSR;
const SSTATUS_READABLE =
  MSTATUS.SIE | MSTATUS.SPIE | MSTATUS.UBE | MSTATUS.SPP | MSTATUS.VS | MSTATUS.FS | MSTATUS.XS | MSTATUS.SUM | MSTATUS.MXR;
const SSTATUS_WRITABLE = MSTATUS.SIE | MSTATUS.SPIE | MSTATUS.SPP | MSTATUS.FS | MSTATUS.SUM | MSTATUS.MXR;
/** sstatus's high word shows UXL (bits 33:32) and SD. */
const SSTATUS_HI = 0x3 | MSTATUS.HI_SD;
const ENVCFG_FIOM = 1;
const MIP_M_WRITABLE = MIP_SSIP | MIP_STIP;

/** CSRs written verbatim into their slot, by address. */
const PLAIN_SLOTS = new Map<number, number>([
  [CSR.SSCRATCH, CSR_OFF.SSCRATCH],
  [CSR.SCAUSE, CSR_OFF.SCAUSE],
  [CSR.STVAL, CSR_OFF.STVAL],
  [CSR.MSCRATCH, CSR_OFF.MSCRATCH],
  [CSR.MCAUSE, CSR_OFF.MCAUSE],
  [CSR.MTVAL, CSR_OFF.MTVAL],
]);

/** CSRs read verbatim from their slot (their writes are legalised in write()), by address. */
const READ_SLOTS = new Map<number, number>([
  ...PLAIN_SLOTS,
  [CSR.STVEC, CSR_OFF.STVEC],
  [CSR.SCOUNTEREN, CSR_OFF.SCOUNTEREN],
  [CSR.SENVCFG, CSR_OFF.SENVCFG],
  [CSR.SEPC, CSR_OFF.SEPC],
  [CSR.MSTATUS, CSR_OFF.MSTATUS],
  [CSR.MEDELEG, CSR_OFF.MEDELEG],
  [CSR.MIDELEG, CSR_OFF.MIDELEG],
  [CSR.MIE, CSR_OFF.MIE],
  [CSR.MTVEC, CSR_OFF.MTVEC],
  [CSR.MCOUNTEREN, CSR_OFF.MCOUNTEREN],
  [CSR.MENVCFG, CSR_OFF.MENVCFG],
  [CSR.MEPC, CSR_OFF.MEPC],
]);

export class CsrFile {
  /** The value read by the last successful read(): [lo, hi]. */
  readonly value = new Int32Array(2);

  constructor(
    private readonly st: HartState,
    private readonly pmp: Pmp,
    private readonly counters: Counters,
    private readonly onContext: () => void,
    private readonly onFlush: () => void,
  ) {}

  /** Checks the access and reads the CSR into `value`; false: illegal instruction. */
  read(csr: number, write: boolean): boolean {
    const st = this.st;
    const priv = st.priv;
    if (priv < ((csr >>> 8) & 3) || (write && csr >>> 10 === 3)) return false;
    const slot = READ_SLOTS.get(csr);
    if (slot !== undefined) return this.slot(slot);
    switch (csr) {
      case CSR.FFLAGS:
      case CSR.FRM:
      case CSR.FCSR: {
        if ((st.mstatus & MSTATUS.FS) === 0) return false;
        const flags = st.get32(HS.FFLAGS) & 0x1f;
        const rm = st.get32(HS.FRM) & 7;
        return this.set(csr === CSR.FFLAGS ? flags : csr === CSR.FRM ? rm : (rm << 5) | flags, 0);
      }
      case CSR.SSTATUS:
        return this.set(st.mstatus & SSTATUS_READABLE, st.hi(CSR_OFF.MSTATUS) & SSTATUS_HI);
      case CSR.SIE:
        return this.set(st.get32(CSR_OFF.MIE) & st.get32(CSR_OFF.MIDELEG), 0);
      case CSR.SIP:
        return this.set(st.mip() & st.get32(CSR_OFF.MIDELEG), 0);
      case CSR.SATP:
        if (priv === PRIV_S && (st.mstatus & MSTATUS.TVM) !== 0) return false;
        return this.slot(CSR_OFF.SATP);
      case CSR.MVENDORID:
      case CSR.MARCHID:
      case CSR.MIMPID:
      case CSR.MCONFIGPTR:
      case CSR.MCOUNTINHIBIT:
        return this.set(0, 0);
      case CSR.MHARTID:
        return this.set(st.id, 0);
      case CSR.MISA:
        return this.set(MISA_LO, MISA_HI);
      case CSR.MIP:
        return this.set(st.mip(), 0);
      case CSR.PMPCFG0:
      case CSR.PMPCFG2:
        this.pmp.readCfg(csr === CSR.PMPCFG0 ? 0 : 2, this.value);
        return true;
      case CSR.MCYCLE:
      case CSR.MINSTRET:
        doubleHalves(this.counters.read(csr & 0x1f), this.value);
        return true;
    }
    if (csr >= CSR.PMPADDR0 && csr <= CSR.PMPADDR15) {
      this.pmp.readAddr(csr - CSR.PMPADDR0, this.value);
      return true;
    }
    if (csr >= CSR.CYCLE && csr <= CSR.HPMCOUNTER31) {
      if (!this.counters.enabled(csr & 0x1f, priv)) return false;
      doubleHalves(this.counters.read(csr & 0x1f), this.value);
      return true;
    }
    if ((csr >= CSR.MHPMCOUNTER3 && csr <= CSR.MHPMCOUNTER31) || (csr >= CSR.MHPMEVENT3 && csr <= CSR.MHPMEVENT31)) {
      return this.set(0, 0);
    }
    return false;
  }

  /**
   * csrrw (kind 0), csrrs (1) or csrrc (2) with operand (lo, hi) on a CSR that read(csr, true) just
   * read. The pending bits of mip/sip are set and cleared one by one (Atomics on the shared word),
   * never rewritten from the value read, so a bit another thread raises meanwhile is not lost, and
   * mip's SEIP changes only its software bit (the interrupt controller's signal is only ORed in on
   * reads, as the privileged spec says).
   */
  modify(csr: number, kind: 0 | 1 | 2, lo: number, hi: number): void {
    if (csr === CSR.MIP || csr === CSR.SIP) return this.modifyPending(csr, kind, lo);
    const [oldLo, oldHi] = this.value;
    if (kind === 0) this.write(csr, lo, hi);
    else if (kind === 1) this.write(csr, oldLo | lo, oldHi | hi);
    else this.write(csr, oldLo & ~lo, oldHi & ~hi);
  }

  private modifyPending(csr: number, kind: 0 | 1 | 2, operand: number): void {
    const st = this.st;
    const mask =
      csr === CSR.MIP ? MIP_M_WRITABLE | MIP_SEIP : st.get32(CSR_OFF.MIDELEG) & MIP_SSIP;
    const set = kind === 2 ? 0 : operand & mask;
    const clear = kind === 1 ? 0 : (kind === 0 ? ~operand : operand) & mask;
    st.setMipBits(set & ~MIP_SEIP, true);
    st.setMipBits(clear & ~MIP_SEIP, false);
    const softSeip = st.get32(CSR_OFF.MIP_SW_SEIP);
    st.set32(CSR_OFF.MIP_SW_SEIP, ((softSeip | set) & ~clear) & MIP_SEIP);
  }

  private write(csr: number, lo: number, hi: number): void {
    const st = this.st;
    const slot = PLAIN_SLOTS.get(csr);
    if (slot !== undefined) {
      st.set64(slot, lo, hi);
      return;
    }
    switch (csr) {
      case CSR.FFLAGS:
        st.set32(HS.FFLAGS, lo & 0x1f);
        return this.fpDirty();
      case CSR.FRM:
        st.set32(HS.FRM, lo & 7);
        return this.fpDirty();
      case CSR.FCSR:
        st.set32(HS.FFLAGS, lo & 0x1f);
        st.set32(HS.FRM, (lo >>> 5) & 7);
        return this.fpDirty();
      case CSR.SSTATUS:
        st.mstatus = (st.mstatus & ~SSTATUS_WRITABLE) | (lo & SSTATUS_WRITABLE);
        return this.onContext();
      case CSR.MSTATUS: {
        let value = (st.mstatus & ~MSTATUS_WRITABLE) | (lo & MSTATUS_WRITABLE);
        if ((value & MSTATUS.MPP) >>> MSTATUS.MPP_SHIFT === 2) value = (value & ~MSTATUS.MPP) | (st.mstatus & MSTATUS.MPP);
        st.mstatus = value;
        return this.onContext();
      }
      case CSR.SIE:
      case CSR.MIE: {
        const mask = csr === CSR.MIE ? ALL_INTERRUPTS : st.get32(CSR_OFF.MIDELEG);
        return st.set64(CSR_OFF.MIE, (st.get32(CSR_OFF.MIE) & ~mask) | (lo & mask), 0);
      }
      case CSR.STVEC:
      case CSR.MTVEC:
        if ((lo & 3) < 2) st.set64(csr === CSR.MTVEC ? CSR_OFF.MTVEC : CSR_OFF.STVEC, lo, hi);
        return;
      case CSR.SEPC:
      case CSR.MEPC:
        return st.set64(csr === CSR.MEPC ? CSR_OFF.MEPC : CSR_OFF.SEPC, lo & ~1, hi);
      case CSR.SCOUNTEREN:
        return st.set64(CSR_OFF.SCOUNTEREN, lo, 0);
      case CSR.MCOUNTEREN:
        return st.set64(CSR_OFF.MCOUNTEREN, lo, 0);
      case CSR.SENVCFG:
        return st.set64(CSR_OFF.SENVCFG, lo & ENVCFG_FIOM, 0);
      case CSR.MENVCFG:
        return st.set64(CSR_OFF.MENVCFG, lo & ENVCFG_FIOM, 0);
      case CSR.SATP: {
        const mode = hi >>> 28;
        if (mode !== SATP_MODE.BARE && mode !== SATP_MODE.SV39 && mode !== SATP_MODE.SV48) return;
        st.set64(CSR_OFF.SATP, lo, hi & 0xf000_0fff);
        return this.onFlush();
      }
      case CSR.MEDELEG:
        return st.set64(CSR_OFF.MEDELEG, lo & DELEGABLE_EXCEPTIONS, 0);
      case CSR.MIDELEG:
        return st.set64(CSR_OFF.MIDELEG, lo & S_INTERRUPTS, 0);
      case CSR.PMPCFG0:
      case CSR.PMPCFG2:
        this.pmp.writeCfg(csr === CSR.PMPCFG0 ? 0 : 2, lo, hi);
        return this.onFlush();
      case CSR.MCYCLE:
        return this.counters.writeCycle((lo >>> 0) + (hi >>> 0) * 0x1_0000_0000);
      case CSR.MINSTRET:
        return this.counters.writeInstret(lo, hi);
    }
    if (csr >= CSR.PMPADDR0 && csr <= CSR.PMPADDR15) {
      this.pmp.writeAddr(csr - CSR.PMPADDR0, lo, hi);
      this.onFlush();
    }
    // everything else accepted by read() is read-only zero or fixed: writes are ignored
  }

  /** mstatus.FS = Dirty (and SD). */
  fpDirty(): void {
    this.st.mstatus = this.st.mstatus | MSTATUS.FS_DIRTY;
  }

  private slot(off: number): true {
    this.value[0] = this.st.lo(off);
    this.value[1] = this.st.hi(off);
    return true;
  }

  private set(lo: number, hi: number): true {
    this.value[0] = lo;
    this.value[1] = hi;
    return true;
  }
}
