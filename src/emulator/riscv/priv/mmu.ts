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
 * accesses never skip an A/D update.
 *
 * Translation contexts. What an entry allows depends on the context it was
 * filled in: (privilege, effective data privilege, SUM for S-mode data, MXR).
 * A kernel changes context all the time (every syscall and interrupt goes
 * U → S and back), and each side would refill the same entries again and
 * again, so each hart has TLB_SETS sets of tables (layout.ts) and a context
 * keeps its set while others run: syncContext() makes the context's set
 * current (the TLB_SET word) or, for a context without one, empties the least
 * recently used set and gives it to the context. Entries stay valid until
 * satp, PMP or sfence.vma flush them, whichever set holds them (a page whose
 * PTE changes needs sfence.vma): flush() empties every set, flushPage() drops
 * the page from every set. A page that becomes a code page loses its store
 * entries in every set (dropStorePage). Emptying a set rewrites only the
 * entries filled since it was last emptied while they are few (a fill log per
 * set), else the whole set.
 */
import {
  CODE_PAGE_MAP_BASE,
  HS,
  PRIV_M,
  PRIV_S,
  PRIV_U,
  RAM_GPA_BASE,
  RAM_HOST_BASE,
  TLB_ENTRY_SIZE,
  TLB_FETCH,
  TLB_LOAD,
  TLB_SET_SIZE,
  TLB_SETS,
  TLB_STORE,
  TLB_TABLE_SIZE,
  tlbBase,
  tlbIndex,
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
/** Fills logged per set; beyond this many, emptying the set rewrites all of it. */
const FILL_LOG_SIZE = 512;
const ENTRY_WORDS = TLB_ENTRY_SIZE >> 2;

export class Mmu {
  /** Offset of the hart's first TLB set. */
  private readonly tlb: number;
  private readonly ramEnd: number;
  private context = -1;
  /** The set in use, and the context each set holds (-1: none). */
  private current = 0;
  private readonly owners = new Int32Array(TLB_SETS).fill(-1);
  /** When each set was last made current (for least recently used). */
  private readonly lastUsed = new Float64Array(TLB_SETS);
  private clock = 0;
  /** Per set: word indexes of the entries filled since it was emptied, and how many (more than FILL_LOG_SIZE: overflowed). */
  private readonly fillLogs = Array.from({ length: TLB_SETS }, () => new Int32Array(FILL_LOG_SIZE));
  private readonly fillCounts = new Int32Array(TLB_SETS);

  constructor(
    private readonly st: HartState,
    private readonly pmp: Pmp,
    private readonly traps: Traps,
    ramBytes: number,
  ) {
    this.tlb = tlbBase(st.id);
    this.ramEnd = RAM_GPA_BASE + ramBytes;
    this.fillCounts.fill(FILL_LOG_SIZE + 1);
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
   * Switches the TLB to the current translation context if it changed: its set becomes the
   * current one, or the least recently used set is emptied and given to it.
   */
  syncContext(): void {
    const priv = this.st.priv;
    const status = this.st.mstatus;
    const dataPriv =
      priv === PRIV_M && (status & MSTATUS.MPRV) !== 0 ? (status & MSTATUS.MPP) >>> MSTATUS.MPP_SHIFT : priv;
    const sum = dataPriv === PRIV_S ? status & MSTATUS.SUM : 0;
    const context = priv | (dataPriv << 2) | sum | (status & MSTATUS.MXR);
    if (context === this.context) return;
    this.context = context;
    let set = this.owners.indexOf(context);
    if (set < 0) {
      set = 0;
      for (let k = 1; k < TLB_SETS; k++) if (this.lastUsed[k]! < this.lastUsed[set]!) set = k;
      this.empty(set);
      this.owners[set] = context;
    }
    this.use(set);
  }

  /** Empties every set (the current one stays the current context's). */
  flush(): void {
    for (let k = 0; k < TLB_SETS; k++) {
      this.empty(k);
      this.owners[k] = -1;
    }
    this.owners[this.current] = this.context;
    this.use(this.current);
  }

  /** Drops the entries of the page holding va from every table of every set. */
  flushPage(vaLo: number, vaHi: number): void {
    const i32 = this.st.i32;
    const tagLo = (vaLo >>> 12) | (vaHi << 20);
    const tagHi = vaHi >>> 12;
    const slot = tlbIndex(vaLo) * TLB_ENTRY_SIZE;
    for (let k = 0; k < TLB_SETS; k++) {
      for (const table of PAGE_TABLE_BY_ACCESS) {
        const e = (this.setBase(k) + table + slot) >> 2;
        if (i32[e] === tagLo && i32[e + 1] === tagHi) i32[e] = i32[e + 1] = -1;
      }
    }
  }

  /** Drops the store entries of every set that point into RAM page `page` ((gpa - RAM_GPA_BASE) >>> 12): it became a code page. */
  dropStorePage(page: number): void {
    const i32 = this.st.i32;
    for (let k = 0; k < TLB_SETS; k++) {
      const first = (this.setBase(k) + TLB_STORE) >> 2;
      const end = first + (TLB_TABLE_SIZE >> 2);
      const count = this.fillCounts[k]!;
      if (count <= FILL_LOG_SIZE) {
        const log = this.fillLogs[k]!;
        for (let i = 0; i < count; i++) if (log[i]! >= first && log[i]! < end) dropIfOnPage(i32, log[i]!, page);
      } else {
        for (let e = first; e < end; e += ENTRY_WORDS) dropIfOnPage(i32, e, page);
      }
    }
  }

  private setBase(set: number): number {
    return this.tlb + set * TLB_SET_SIZE;
  }

  private use(set: number): void {
    this.current = set;
    this.lastUsed[set] = ++this.clock;
    this.st.set32(HS.TLB_SET, this.setBase(set));
  }

  /** Empties set `set`: the logged entries, or all of it when the log overflowed. */
  private empty(set: number): void {
    const i32 = this.st.i32;
    const count = this.fillCounts[set]!;
    if (count > FILL_LOG_SIZE) {
      const first = this.setBase(set) >> 2;
      i32.fill(-1, first, first + (TLB_SET_SIZE >> 2));
    } else {
      const log = this.fillLogs[set]!;
      for (let i = 0; i < count; i++) i32[log[i]!] = i32[log[i]! + 1] = -1;
    }
    this.fillCounts[set] = 0;
  }

  private fill(table: number, vaLo: number, vaHi: number, pageBase: number): void {
    const set = this.current;
    const e = (this.setBase(set) + table + tlbIndex(vaLo) * TLB_ENTRY_SIZE) >> 2;
    const hostPage = pageBase - RAM_GPA_BASE + RAM_HOST_BASE;
    const i32 = this.st.i32;
    const count = this.fillCounts[set]!;
    if (count < FILL_LOG_SIZE) this.fillLogs[set]![count] = e;
    if (count <= FILL_LOG_SIZE) this.fillCounts[set] = count + 1;
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

/** Empties the TLB entry at word `e` if its host page (tag * 4096 + addend) is RAM page `page`. */
function dropIfOnPage(i32: Int32Array, e: number, page: number): void {
  const tagLo = i32[e]!;
  if (tagLo === -1 && i32[e + 1] === -1) return;
  if (((((tagLo << 12) + i32[e + 2]!) >>> 0) - RAM_HOST_BASE) >>> 12 === page) i32[e] = i32[e + 1] = -1;
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
