/**
 * Numbers of the RISC-V privileged architecture (privileged spec 1.12) that
 * the hart, the interpreter and the JIT share: CSR addresses, mstatus and
 * interrupt bit positions, exception causes, and where each CSR lives in the
 * hart state block.
 *
 * Storage (CSR_OFF, byte offsets from the hart's state block base, inside
 * HS.CSR_AREA..): every CSR that is not at a fixed layout.ts offset takes an
 * 8-byte little-endian slot, written only by csr.ts/trap.ts/hart.ts on the
 * hart's own thread. The JIT may read them directly (e.g. mstatus for FS).
 * CSRs not stored here are constants (misa, mhartid, mvendorid...) or live at
 * layout.ts offsets (fflags/frm at HS.FFLAGS/HS.FRM, mip at HS.MIP, minstret
 * at HS.INSTRET).
 *   MSTATUS     full 64-bit mstatus (UXL = SXL = 2, SD kept consistent with FS)
 *   MIP_SW_SEIP the software-written SEIP bit (mip reads OR it into the HS.MIP word)
 *   MCYCLE_DELTA mcycle - minstret as a float64 (mcycle counts retired instructions)
 *   FLUSH_REQUEST i32: another thread sets it (Atomics) to ask this hart to flush
 *               its TLB and translated code at its next checkInterrupts()
 *   PMPCFG      16 configuration bytes, entry i at byte i
 *   PMPADDR     16 slots of 8 bytes, pmpaddr0..15
 */
import { HS } from '../layout.js';

const A = HS.CSR_AREA;

export const CSR_OFF = {
  MSTATUS: A + 0,
  MEDELEG: A + 8,
  MIDELEG: A + 16,
  MIE: A + 24,
  MTVEC: A + 32,
  MSCRATCH: A + 40,
  MEPC: A + 48,
  MCAUSE: A + 56,
  MTVAL: A + 64,
  MCOUNTEREN: A + 72,
  MENVCFG: A + 80,
  STVEC: A + 88,
  SSCRATCH: A + 96,
  SEPC: A + 104,
  SCAUSE: A + 112,
  STVAL: A + 120,
  SCOUNTEREN: A + 128,
  SENVCFG: A + 136,
  SATP: A + 144,
  MIP_SW_SEIP: A + 152,
  MCYCLE_DELTA: A + 160,
  FLUSH_REQUEST: A + 168,
  PMPCFG: A + 176,
  PMPADDR: A + 192,
  END: A + 192 + 16 * 8,
} as const;

/** CSR addresses. */
export const CSR = {
  FFLAGS: 0x001,
  FRM: 0x002,
  FCSR: 0x003,
  CYCLE: 0xc00,
  TIME: 0xc01,
  INSTRET: 0xc02,
  HPMCOUNTER3: 0xc03,
  HPMCOUNTER31: 0xc1f,
  SSTATUS: 0x100,
  SIE: 0x104,
  STVEC: 0x105,
  SCOUNTEREN: 0x106,
  SENVCFG: 0x10a,
  SSCRATCH: 0x140,
  SEPC: 0x141,
  SCAUSE: 0x142,
  STVAL: 0x143,
  SIP: 0x144,
  SATP: 0x180,
  MVENDORID: 0xf11,
  MARCHID: 0xf12,
  MIMPID: 0xf13,
  MHARTID: 0xf14,
  MCONFIGPTR: 0xf15,
  MSTATUS: 0x300,
  MISA: 0x301,
  MEDELEG: 0x302,
  MIDELEG: 0x303,
  MIE: 0x304,
  MTVEC: 0x305,
  MCOUNTEREN: 0x306,
  MENVCFG: 0x30a,
  MCOUNTINHIBIT: 0x320,
  MHPMEVENT3: 0x323,
  MHPMEVENT31: 0x33f,
  MSCRATCH: 0x340,
  MEPC: 0x341,
  MCAUSE: 0x342,
  MTVAL: 0x343,
  MIP: 0x344,
  PMPCFG0: 0x3a0,
  PMPCFG2: 0x3a2,
  PMPADDR0: 0x3b0,
  PMPADDR15: 0x3bf,
  MCYCLE: 0xb00,
  MINSTRET: 0xb02,
  MHPMCOUNTER3: 0xb03,
  MHPMCOUNTER31: 0xb1f,
} as const;

/** mstatus bits in the low word. */
export const MSTATUS = {
  SIE: 1 << 1,
  MIE: 1 << 3,
  SPIE: 1 << 5,
  UBE: 1 << 6,
  MPIE: 1 << 7,
  SPP: 1 << 8,
  VS: 3 << 9,
  MPP_SHIFT: 11,
  MPP: 3 << 11,
  FS: 3 << 13,
  FS_DIRTY: 3 << 13,
  XS: 3 << 15,
  MPRV: 1 << 17,
  SUM: 1 << 18,
  MXR: 1 << 19,
  TVM: 1 << 20,
  TW: 1 << 21,
  TSR: 1 << 22,
  /** High word: UXL = 2 (bits 33:32) and SXL = 2 (bits 35:34). */
  HI_XL: 0xa,
  /** High word: SD (bit 63). */
  HI_SD: 1 << 31,
} as const;

/** Interrupt numbers (bit positions in mip/mie) and their bit masks. */
export const IRQ = {
  SSI: 1,
  MSI: 3,
  STI: 5,
  MTI: 7,
  SEI: 9,
  MEI: 11,
} as const;
export const MIP_SSIP = 1 << IRQ.SSI;
export const MIP_MSIP = 1 << IRQ.MSI;
export const MIP_STIP = 1 << IRQ.STI;
export const MIP_MTIP = 1 << IRQ.MTI;
export const MIP_SEIP = 1 << IRQ.SEI;
export const MIP_MEIP = 1 << IRQ.MEI;
/** The S-level interrupt bits (delegable through mideleg). */
export const S_INTERRUPTS = MIP_SSIP | MIP_STIP | MIP_SEIP;
/** All interrupt bits this hart implements. */
export const ALL_INTERRUPTS = S_INTERRUPTS | MIP_MSIP | MIP_MTIP | MIP_MEIP;

/** Synchronous exception causes. */
export const CAUSE = {
  FETCH_MISALIGNED: 0,
  FETCH_ACCESS: 1,
  ILLEGAL_INSTRUCTION: 2,
  BREAKPOINT: 3,
  LOAD_MISALIGNED: 4,
  LOAD_ACCESS: 5,
  STORE_MISALIGNED: 6,
  STORE_ACCESS: 7,
  ECALL_U: 8,
  ECALL_S: 9,
  ECALL_M: 11,
  FETCH_PAGE_FAULT: 12,
  LOAD_PAGE_FAULT: 13,
  STORE_PAGE_FAULT: 15,
} as const;

/** Exceptions medeleg can delegate (all implemented causes but ecall from M). */
export const DELEGABLE_EXCEPTIONS =
  0x3ff /* causes 0..9 */ | (1 << CAUSE.FETCH_PAGE_FAULT) | (1 << CAUSE.LOAD_PAGE_FAULT) | (1 << CAUSE.STORE_PAGE_FAULT);

/** misa: MXL = 2 (RV64) and extensions A C D F I M S U. */
export const MISA_LO = [0, 2, 3, 5, 8, 12, 18, 20].reduce((bits, letter) => bits | (1 << letter), 0);
export const MISA_HI = 0x8000_0000 | 0;

/** satp MODE values (bits 63:60). */
export const SATP_MODE = { BARE: 0, SV39: 8, SV48: 9 } as const;

/** Memory access kinds, used by the MMU, PMP and fault cause selection. */
export const ACCESS_FETCH = 0;
export const ACCESS_LOAD = 1;
export const ACCESS_STORE = 2;
export type AccessKind = typeof ACCESS_FETCH | typeof ACCESS_LOAD | typeof ACCESS_STORE;

/** Page fault and access fault causes by access kind. */
export const PAGE_FAULT_CAUSE = [CAUSE.FETCH_PAGE_FAULT, CAUSE.LOAD_PAGE_FAULT, CAUSE.STORE_PAGE_FAULT] as const;
export const ACCESS_FAULT_CAUSE = [CAUSE.FETCH_ACCESS, CAUSE.LOAD_ACCESS, CAUSE.STORE_ACCESS] as const;
