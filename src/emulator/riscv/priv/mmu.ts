/**
 * Address translation: Sv39/Sv48 page walks, PMP, and the software TLB that
 * the interpreter and the JIT read inline (layout.ts describes its format).
 *
 * translate(va, access, size) returns the physical address (a double) of a
 * data access or instruction fetch, or -1 after raising the fault:
 *   - effective privilege: loads and stores in M-mode with mstatus.MPRV use
 *     mstatus.MPP; fetches always use the current privilege;
 *   - M-mode and satp Bare: pa = va (a va at or above 2^56 is an access fault);
 *   - Sv39/Sv48: the va must be sign-extended from bit 38/47 (else page fault);
 *     the walk reads PTEs from RAM only (access fault otherwise, and PMP-checked
 *     as S-mode reads), rejects invalid/reserved encodings (V = 0, W without R,
 *     bits 63:54 set: no Svpbmt/Svnapot) and misaligned superpages, applies
 *     U/SUM/MXR and the R/W/X bits, and sets A (and D for stores) with an
 *     atomic compare-and-swap on the PTE's low word, restarting the walk if
 *     another hart changed the PTE meanwhile;
 *   - PMP is checked on the final [pa, pa + size).
 * Faults carry the va as tval: page faults 12/13/15, access faults 1/5/7.
 *
 * TLB fill: after a successful translation of a guest-RAM address, the 4 KiB
 * page's entry goes into the table of its access kind when PMP grants the
 * whole page, and for stores only when the page is not in the code-page map.
 * A and D are already set then (the walk sets them before filling), so cached
 * accesses never skip an A/D update. The tables are flushed whenever the
 * translation context changes: syncContext() compares (privilege, effective
 * data privilege, SUM, MXR) with the last context; satp and PMP writes and
 * sfence.vma flush explicitly. Clearing touches just the entries filled since
 * the previous clear while they are few, else all three tables.
 *
 * Context switches (a trap from U to S and the sret back, every syscall)
 * would refill the same entries again and again, so when a context is left
 * with few entries they are saved, and put back when it is entered again
 * (store entries only if their page has not become a code page meanwhile).
 * Saved entries stay valid until satp, PMP or sfence.vma flush them: the same
 * rule the live entries follow (a page whose PTE changes needs sfence.vma).
 */
import {
  CODE_PAGE_MAP_BASE,
  PRIV_M,
  PRIV_S,
  PRIV_U,
  RAM_GPA_BASE,
  RAM_HOST_BASE,
  TLB_ENTRIES,
  TLB_ENTRY_SIZE,
  TLB_FETCH,
  TLB_LOAD,
  TLB_STORE,
  TLB_TABLE_SIZE,
  tlbBase,
} from '../layout.js';
import {
  ACCESS_FAULT_CAUSE,
  ACCESS_FETCH,
  ACCESS_LOAD,
  ACCESS_STORE,
  CSR_OFF,
  MSTATUS,
  PAGE_FAULT_CAUSE,
  SATP_MODE,
  type AccessKind,
} from './csr-defs.js';
import type { Pmp } from './pmp.js';
import type { HartState } from './state.js';
import type { Traps } from './trap.js';

const PTE_V = 1;
const PTE_R = 2;
const PTE_W = 4;
const PTE_X = 8;
const PTE_U = 16;
const PTE_A = 64;
const PTE_D = 128;
const TWO32 = 0x1_0000_0000;
const PAGE_TABLE_BY_ACCESS = [TLB_FETCH, TLB_LOAD, TLB_STORE];
const WALK_FAULT = -1;
/** Fills remembered for a cheap flush; beyond this many, a flush clears the whole TLB. */
const FILLED_LOG_SIZE = 64;
const SAVED_WORDS = 4;

export class Mmu {
  private readonly tlb: number;
  private readonly ramEnd: number;
  private context = -1;
  /** Word indexes of the entries filled since the last clear (only this object fills entries). */
  private readonly filled = new Int32Array(FILLED_LOG_SIZE);
  private filledCount = FILLED_LOG_SIZE + 1;
  /** Per left context: [count, then (word index, tag lo, tag hi, addend) per entry]. */
  private readonly saved = new Map<number, Int32Array>();

  constructor(
    private readonly st: HartState,
    private readonly pmp: Pmp,
    private readonly traps: Traps,
    ramBytes: number,
  ) {
    this.tlb = tlbBase(st.id);
    this.ramEnd = RAM_GPA_BASE + ramBytes;
  }

  /** Whether [pa, pa + size) lies in guest RAM. */
  isRam(pa: number, size: number): boolean {
    return pa >= RAM_GPA_BASE && pa + size <= this.ramEnd;
  }

  /** Physical address of the access, or -1 when a fault was raised. */
  translate(vaLo: number, vaHi: number, access: AccessKind, size: number): number {
    const st = this.st;
    let priv = st.priv;
    const status = st.mstatus;
    if (access !== ACCESS_FETCH && priv === PRIV_M && (status & MSTATUS.MPRV) !== 0) {
      priv = (status & MSTATUS.MPP) >>> MSTATUS.MPP_SHIFT;
    }
    const mode = st.hi(CSR_OFF.SATP) >>> 28;
    let pa: number;
    if (priv === PRIV_M || mode === SATP_MODE.BARE) {
      if (vaHi < 0 || vaHi >= 0x100_0000) return this.fault(ACCESS_FAULT_CAUSE[access], vaLo, vaHi);
      pa = (vaLo >>> 0) + vaHi * TWO32;
    } else {
      pa = this.walk(vaLo, vaHi, access, priv, status, mode === SATP_MODE.SV39 ? 3 : 4);
      if (pa === WALK_FAULT) return -1;
    }
    if (!this.pmp.check(pa, size, access, priv)) return this.fault(ACCESS_FAULT_CAUSE[access], vaLo, vaHi);
    const pageBase = pa - (vaLo & 0xfff);
    if (this.isRam(pageBase, 4096) && this.pmp.check(pageBase, 4096, access, priv)) {
      if (access !== ACCESS_STORE || this.st.u8[CODE_PAGE_MAP_BASE + (pageBase - RAM_GPA_BASE) / 4096] === 0) {
        this.fill(PAGE_TABLE_BY_ACCESS[access], vaLo, vaHi, pageBase);
      }
    }
    return pa;
  }

  /**
   * Switches the TLB to the current translation context if it changed: the entries of the context
   * being left are saved (when few), the tables cleared, and the saved entries of the context
   * being entered put back.
   */
  syncContext(): void {
    const priv = this.st.priv;
    const status = this.st.mstatus;
    const dataPriv =
      priv === PRIV_M && (status & MSTATUS.MPRV) !== 0 ? (status & MSTATUS.MPP) >>> MSTATUS.MPP_SHIFT : priv;
    const context = priv | (dataPriv << 2) | (status & (MSTATUS.SUM | MSTATUS.MXR));
    if (context !== this.context) {
      this.save(this.context);
      this.clearLive();
      this.context = context;
      this.restore(context);
    }
  }

  /** Empties all three tables and forgets every saved context. */
  flush(): void {
    this.clearLive();
    this.saved.clear();
  }

  /** Drops the entries of the page holding va from all three tables and from the saved contexts. */
  flushPage(vaLo: number, vaHi: number): void {
    const i32 = this.st.i32;
    const tagLo = (vaLo >>> 12) | (vaHi << 20);
    const tagHi = vaHi >>> 12;
    const slot = ((vaLo >>> 12) & (TLB_ENTRIES - 1)) * TLB_ENTRY_SIZE;
    for (const table of PAGE_TABLE_BY_ACCESS) {
      const e = (this.tlb + table + slot) >> 2;
      if (i32[e] === tagLo && i32[e + 1] === tagHi) i32[e] = i32[e + 1] = -1;
    }
    for (const set of this.saved.values()) {
      for (let i = 0, at = 1; i < set[0]; i++, at += SAVED_WORDS) {
        if (set[at + 1] === tagLo && set[at + 2] === tagHi) set[at + 1] = set[at + 2] = -1;
      }
    }
  }

  /** Empties the three tables: the entries filled since the last clear, or everything when they were many. */
  private clearLive(): void {
    const i32 = this.st.i32;
    if (this.filledCount > FILLED_LOG_SIZE) {
      i32.fill(-1, this.tlb >> 2, (this.tlb + 3 * TLB_TABLE_SIZE) >> 2);
    } else {
      for (let i = 0; i < this.filledCount; i++) i32[this.filled[i]] = i32[this.filled[i] + 1] = -1;
    }
    this.filledCount = 0;
  }

  /** Remembers the live entries of `context` (only when the fill log holds them all). */
  private save(context: number): void {
    if (context < 0 || this.filledCount > FILLED_LOG_SIZE) {
      this.saved.delete(context);
      return;
    }
    let set = this.saved.get(context);
    if (set === undefined) {
      set = new Int32Array(1 + FILLED_LOG_SIZE * SAVED_WORDS);
      this.saved.set(context, set);
    }
    const i32 = this.st.i32;
    set[0] = this.filledCount;
    for (let i = 0, at = 1; i < this.filledCount; i++, at += SAVED_WORDS) {
      const e = this.filled[i];
      set[at] = e;
      set[at + 1] = i32[e];
      set[at + 2] = i32[e + 1];
      set[at + 3] = i32[e + 2];
    }
  }

  /** Puts back the saved entries of `context`, except store entries of pages that became code pages. */
  private restore(context: number): void {
    const set = this.saved.get(context);
    if (set === undefined) return;
    const i32 = this.st.i32;
    const storeFirst = (this.tlb + TLB_STORE) >> 2;
    const storeEnd = storeFirst + (TLB_TABLE_SIZE >> 2);
    for (let i = 0, at = 1; i < set[0]; i++, at += SAVED_WORDS) {
      const e = set[at];
      const tagLo = set[at + 1];
      if (tagLo === -1 && set[at + 2] === -1) continue;
      if (e >= storeFirst && e < storeEnd) {
        const host = ((tagLo << 12) + set[at + 3]) >>> 0;
        if (this.st.u8[CODE_PAGE_MAP_BASE + ((host - RAM_HOST_BASE) >>> 12)] !== 0) continue;
      }
      this.filled[this.filledCount++] = e;
      i32[e + 2] = set[at + 3];
      i32[e + 1] = set[at + 2];
      i32[e] = tagLo;
    }
  }

  private fill(table: number, vaLo: number, vaHi: number, pageBase: number): void {
    const e = (this.tlb + table + ((vaLo >>> 12) & (TLB_ENTRIES - 1)) * TLB_ENTRY_SIZE) >> 2;
    const hostPage = pageBase - RAM_GPA_BASE + RAM_HOST_BASE;
    const i32 = this.st.i32;
    if (this.filledCount < FILLED_LOG_SIZE) this.filled[this.filledCount] = e;
    this.filledCount++;
    i32[e + 2] = (hostPage - (vaLo & ~0xfff)) | 0;
    i32[e + 1] = vaHi >>> 12;
    i32[e] = (vaLo >>> 12) | (vaHi << 20);
  }

  private fault(cause: number, vaLo: number, vaHi: number): number {
    this.traps.exception(cause, vaLo, vaHi);
    return -1;
  }

  /** The Sv39/Sv48 walk; returns the physical address or WALK_FAULT after raising the fault. */
  private walk(vaLo: number, vaHi: number, access: AccessKind, priv: number, status: number, levels: number): number {
    const top = vaHi >> (levels === 3 ? 6 : 15);
    if (top !== 0 && top !== -1) return this.fault(PAGE_FAULT_CAUSE[access], vaLo, vaHi);
    const i32 = this.st.i32;
    for (;;) {
      let table = (this.st.lo(CSR_OFF.SATP) + (this.st.hi(CSR_OFF.SATP) & 0xfff) * TWO32) * 4096;
      for (let level = levels - 1; ; level--) {
        const pteAddr = table + vpn(vaLo, vaHi, level) * 8;
        if (!this.isRam(pteAddr, 8) || !this.pmp.check(pteAddr, 8, ACCESS_LOAD, PRIV_S)) {
          return this.fault(ACCESS_FAULT_CAUSE[access], vaLo, vaHi);
        }
        const index = (pteAddr - RAM_GPA_BASE + RAM_HOST_BASE) >>> 2;
        const lo = Atomics.load(i32, index);
        const hi = i32[index + 1];
        if ((lo & PTE_V) === 0 || (lo & (PTE_R | PTE_W)) === PTE_W || hi >>> 22 !== 0) {
          return this.fault(PAGE_FAULT_CAUSE[access], vaLo, vaHi);
        }
        const ppn = (hi & 0x3f_ffff) * 0x40_0000 + (lo >>> 10);
        if ((lo & (PTE_R | PTE_X)) === 0) {
          if (level === 0) return this.fault(PAGE_FAULT_CAUSE[access], vaLo, vaHi);
          table = ppn * 4096;
          continue;
        }
        // A superpage's ppn must be aligned to its size: its low 9 * level bits (at most 27) are zero.
        if (!leafAllows(lo, access, priv, status) || (((lo >>> 10) | (hi << 22)) & ((1 << (9 * level)) - 1)) !== 0) {
          return this.fault(PAGE_FAULT_CAUSE[access], vaLo, vaHi);
        }
        const needed = access === ACCESS_STORE ? PTE_A | PTE_D : PTE_A;
        if ((lo & needed) !== needed) {
          if (!this.pmp.check(pteAddr, 8, ACCESS_STORE, PRIV_S)) return this.fault(ACCESS_FAULT_CAUSE[access], vaLo, vaHi);
          if (Atomics.compareExchange(i32, index, lo, lo | needed) !== lo) break; // PTE changed: walk again
        }
        return ppn * 4096 + pageOffset(vaLo, vaHi, level);
      }
    }
  }
}

function leafAllows(pte: number, access: AccessKind, priv: number, status: number): boolean {
  if (pte & PTE_U) {
    if (priv === PRIV_S && (access === ACCESS_FETCH || (status & MSTATUS.SUM) === 0)) return false;
  } else if (priv === PRIV_U) {
    return false;
  }
  if (access === ACCESS_FETCH) return (pte & PTE_X) !== 0;
  if (access === ACCESS_STORE) return (pte & PTE_W) !== 0;
  return (pte & PTE_R) !== 0 || ((status & MSTATUS.MXR) !== 0 && (pte & PTE_X) !== 0);
}

/** The 9-bit virtual page number field of va at `level`. */
function vpn(vaLo: number, vaHi: number, level: number): number {
  switch (level) {
    case 0:
      return (vaLo >>> 12) & 0x1ff;
    case 1:
      return (vaLo >>> 21) & 0x1ff;
    case 2:
      return ((vaLo >>> 30) | (vaHi << 2)) & 0x1ff;
    default:
      return (vaHi >>> 7) & 0x1ff;
  }
}

/** The bits of va below a level-`level` leaf's page number (12 + 9 * level bits). */
function pageOffset(vaLo: number, vaHi: number, level: number): number {
  switch (level) {
    case 0:
      return vaLo & 0xfff;
    case 1:
      return vaLo & 0x1f_ffff;
    case 2:
      return vaLo & 0x3fff_ffff;
    default:
      return (vaLo >>> 0) + (vaHi & 0x7f) * TWO32;
  }
}
