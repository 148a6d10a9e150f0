/**
 * A RISC-V hart's privileged architecture (RV64, M/S/U modes, privileged spec
 * 1.12) as the HartServices the interpreter and the JIT call on their slow
 * paths: memory accesses through the MMU, LR/SC and AMOs, CSRs, traps and
 * interrupts, xRET, WFI, fences.
 *
 * Theory of operation. All architectural state lives in the hart's state
 * block in the shared memory (layout.ts, CSR slots in priv/csr-defs.ts); this
 * object keeps only derived data (the decoded PMP ranges, the MMU's current
 * translation context and which TLB set holds which context), so after anyone else
 * rewrites the state block (reset, snapshot restore) call resync(). The parts:
 *   priv/csr.ts      CSR access rules and WARL behaviour
 *   priv/trap.ts     exception and interrupt entry, delegation, mret/sret
 *   priv/mmu.ts      Sv39/Sv48 walks, A/D updates, software TLB fill/flush
 *   priv/pmp.ts      physical memory protection
 *   priv/atomics.ts  LR/SC and AMOs atomic across threads
 *   priv/counters.ts cycle/time/instret
 *
 * Memory accesses. load/store/fetchHost first look in the software TLB (the
 * same inline check the JIT makes), then translate. A physical address in
 * guest RAM is accessed in the shared memory; any other goes to the `mmio`
 * bus option, whose load/store return false when no device decodes the
 * address (or the device refuses the size or alignment): that is an access
 * fault. 8-byte MMIO accesses are passed to the bus as one call with the value
 * as two 32-bit halves (lo, hi); the bus splits them into two 4-byte device
 * accesses, low word first (bus/mmio-bus.ts). Misaligned accesses are
 * performed: within a page directly, across a page boundary byte by byte after
 * both pages translated (a fault names the page that faulted). A store that
 * lands on a page of the code-page map calls the JIT's invalidatePage hook.
 *
 * LR/SC: lr records the physical address and the value read; sc succeeds when
 * the address matches and memory still holds that value (an atomic
 * compare-and-swap), and always clears the reservation. LR, SC and AMOs must
 * be naturally aligned (else load/store address misaligned) and target RAM
 * (else access fault).
 *
 * Interrupts are taken in checkInterrupts(), which engines call at block
 * boundaries when EXIT_REQUEST is set: devices set it with the MIP bits, and
 * this hart sets it itself after a CSR write, mret or sret that leaves an
 * interrupt pending and enabled.
 *
 * Control transfers: ecall, ebreak and illegal instructions trap; ecall from
 * S-mode first offers the call to the `sbi` option (true: PC = pc + 4). mret
 * and sret set PC to the return address; after a successful wfi, csrAccess,
 * sfenceVma or fenceI the engine moves PC past the instruction itself (after
 * wfi, which sets waitingForInterrupt, the vCPU loop may sleep until
 * wakeable()). checkInterrupts() also serves the FLUSH_REQUEST word other
 * threads set (remote fences): it flushes the TLB and drops all translated code.
 */
import type { AmoOp, CodeCacheHooks, HartServices, MemSize } from './hart-api.js';
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
  TLB_STORE,
  tlbIndex,
} from './layout.js';
import { AtomicMemory } from './priv/atomics.js';
import { Counters } from './priv/counters.js';
import { CsrFile } from './priv/csr.js';
import {
  ACCESS_FAULT_CAUSE,
  ACCESS_FETCH,
  ACCESS_LOAD,
  ACCESS_STORE,
  CAUSE,
  CSR_OFF,
  MSTATUS,
  type AccessKind,
} from './priv/csr-defs.js';
import { Mmu } from './priv/mmu.js';
import { Pmp } from './priv/pmp.js';
import { HartState, resetHartState } from './priv/state.js';
import { Traps } from './priv/trap.js';

/** The MMIO side of the hart: guest-physical accesses outside RAM (bus/mmio-bus.ts MmioBus has this shape). */
export interface HartMmio {
  /** Reads `size` bytes at gpa into lo/hi (hi = 0 below 8 bytes); false when nothing decodes it. */
  load(gpa: number, size: MemSize): boolean;
  /** Writes the low `size` bytes of (lo, hi) at gpa; false when nothing decodes it. */
  store(gpa: number, size: MemSize, lo: number, hi: number): boolean;
  /** The result of the last successful load, as unsigned or signed 32-bit halves. */
  readonly lo: number;
  readonly hi: number;
}

export interface HartOptions {
  memory: WebAssembly.Memory;
  id: number;
  /** Bytes of guest RAM at RAM_GPA_BASE. */
  ramBytes: number;
  /** The CLINT's mtime: 10 MHz ticks (TIMEBASE_HZ) as a double. */
  readMtime: () => number;
  mmio: HartMmio;
  /** tsemu's SBI: called for ecall from S-mode; true when it served the call. */
  sbi?: (hart: Hart) => boolean;
}

const TWO32 = 0x1_0000_0000;

export class Hart implements HartServices {
  readonly id: number;
  readonly memory: WebAssembly.Memory;
  readonly stateBase: number;
  private readonly st: HartState;
  private readonly traps: Traps;
  private readonly pmp: Pmp;
  private readonly mmu: Mmu;
  private readonly csrs: CsrFile;
  private readonly atomics: AtomicMemory;
  private readonly mmio: HartMmio;
  private readonly sbi: ((hart: Hart) => boolean) | undefined;
  private codeCache: CodeCacheHooks | undefined;
  private readonly i32: Int32Array;
  private readonly u8: Uint8Array;
  private readonly dv: DataView;
  private readonly scratch0: number;
  /** Word index of the TLB_SET word (the current TLB set's offset). */
  private readonly tlbSetWord: number;
  /** Set by a successful wfi; the vCPU loop sleeps until wakeable() and clears it (nothing else reads it). */
  waitingForInterrupt = false;
  /** The bytes of a page-crossing load, gathered before they reach SCRATCH0. */
  private readonly crossPageBytes = new Uint8Array(8);

  constructor(options: HartOptions) {
    this.id = options.id;
    this.memory = options.memory;
    this.st = new HartState(options.memory, options.id);
    this.stateBase = this.st.base;
    this.i32 = this.st.i32;
    this.u8 = this.st.u8;
    this.dv = this.st.dv;
    this.scratch0 = this.stateBase + HS.SCRATCH0;
    this.tlbSetWord = (this.stateBase + HS.TLB_SET) >> 2;
    this.mmio = options.mmio;
    this.sbi = options.sbi;
    this.traps = new Traps(this.st, () => this.mmu.syncContext());
    this.pmp = new Pmp(this.st);
    this.mmu = new Mmu(this.st, this.pmp, this.traps, options.ramBytes);
    const counters = new Counters(this.st, options.readMtime);
    this.csrs = new CsrFile(this.st, this.pmp, counters, () => this.mmu.syncContext(), () => this.mmu.flush());
    this.atomics = new AtomicMemory(options.memory);
    this.mmu.syncContext();
  }

  /** Registers the JIT's invalidation hooks. */
  setCodeCacheHooks(hooks: CodeCacheHooks | undefined): void {
    this.codeCache = hooks;
  }

  /** Power-on state: M-mode at `pc`, CSRs cleared, TLB empty. */
  reset(pc: number): void {
    resetHartState(this.memory, this.id, pc);
    this.resync();
  }

  /** Re-reads state that this object decodes (PMP ranges, translation context) after an outside rewrite. */
  resync(): void {
    this.pmp.decode();
    this.mmu.flush();
    this.mmu.syncContext();
  }

  /** True when an interrupt is pending and enabled in mie (WFI wakes up, whatever the global enables). */
  wakeable(): boolean {
    return (this.st.mip() & this.st.get32(CSR_OFF.MIE)) !== 0;
  }

  // ---- memory accesses ----

  load(vaLo: number, vaHi: number, size: MemSize): boolean {
    if ((vaLo & 0xfff) + size > 4096) return this.crossPage(vaLo, vaHi, size, ACCESS_LOAD);
    const e = this.tlbEntry(TLB_LOAD, vaLo);
    const i32 = this.i32;
    if (i32[e] === ((vaLo >>> 12) | (vaHi << 20)) && i32[e + 1] === vaHi >>> 12) {
      this.readHost((vaLo + i32[e + 2]) >>> 0, size);
      return true;
    }
    const pa = this.mmu.translate(vaLo, vaHi, ACCESS_LOAD, size);
    if (pa < 0) return false;
    if (this.mmu.isRam(pa, size)) {
      this.readHost(pa - RAM_GPA_BASE + RAM_HOST_BASE, size);
      return true;
    }
    if (!this.mmio.load(pa, size)) return this.traps.exception(CAUSE.LOAD_ACCESS, vaLo, vaHi);
    this.setScratch0(this.mmio.lo, this.mmio.hi);
    return true;
  }

  store(vaLo: number, vaHi: number, size: MemSize): boolean {
    if ((vaLo & 0xfff) + size > 4096) return this.crossPage(vaLo, vaHi, size, ACCESS_STORE);
    const e = this.tlbEntry(TLB_STORE, vaLo);
    const i32 = this.i32;
    if (i32[e] === ((vaLo >>> 12) | (vaHi << 20)) && i32[e + 1] === vaHi >>> 12) {
      this.writeHost((vaLo + i32[e + 2]) >>> 0, size);
      return true;
    }
    const pa = this.mmu.translate(vaLo, vaHi, ACCESS_STORE, size);
    if (pa < 0) return false;
    if (this.mmu.isRam(pa, size)) {
      this.writeHost(pa - RAM_GPA_BASE + RAM_HOST_BASE, size);
      this.noteCodeWrite(pa, size);
      return true;
    }
    const s0 = this.scratch0;
    if (!this.mmio.store(pa, size, this.dv.getInt32(s0, true), this.dv.getInt32(s0 + 4, true))) {
      return this.traps.exception(CAUSE.STORE_ACCESS, vaLo, vaHi);
    }
    return true;
  }

  fetchHost(vaLo: number, vaHi: number): number {
    const e = this.tlbEntry(TLB_FETCH, vaLo);
    const i32 = this.i32;
    if (i32[e] === ((vaLo >>> 12) | (vaHi << 20)) && i32[e + 1] === vaHi >>> 12) return (vaLo + i32[e + 2]) >>> 0;
    const pa = this.mmu.translate(vaLo, vaHi, ACCESS_FETCH, 2);
    if (pa < 0) return -1;
    if (!this.mmu.isRam(pa, 2)) {
      this.traps.exception(CAUSE.FETCH_ACCESS, vaLo, vaHi);
      return -1;
    }
    return pa - RAM_GPA_BASE + RAM_HOST_BASE;
  }

  loadReserved(vaLo: number, vaHi: number, size: 4 | 8): boolean {
    const host = this.atomicHost(vaLo, vaHi, size, ACCESS_LOAD);
    if (host < 0) return false;
    this.atomics.load(host, size, this.scratch0);
    const st = this.st;
    st.setDouble64(HS.RESERVATION_ADDR, host - RAM_HOST_BASE + RAM_GPA_BASE);
    st.set64(HS.RESERVATION_VALUE, st.lo(HS.SCRATCH0), st.hi(HS.SCRATCH0));
    return true;
  }

  storeConditional(vaLo: number, vaHi: number, size: 4 | 8): boolean {
    const host = this.atomicHost(vaLo, vaHi, size, ACCESS_STORE);
    if (host < 0) return false;
    const st = this.st;
    const pa = host - RAM_HOST_BASE + RAM_GPA_BASE;
    const ok =
      st.getDouble64(HS.RESERVATION_ADDR) === pa &&
      this.atomics.compareExchange(host, size, this.stateBase + HS.RESERVATION_VALUE, this.scratch0);
    st.set64(HS.RESERVATION_ADDR, -1, -1);
    st.set64(HS.SCRATCH1, ok ? 0 : 1, 0);
    if (ok) this.noteCodeWrite(pa, size);
    return true;
  }

  amo(op: AmoOp, vaLo: number, vaHi: number, size: 4 | 8): boolean {
    const host = this.atomicHost(vaLo, vaHi, size, ACCESS_STORE);
    if (host < 0) return false;
    this.atomics.amo(op, host, size, this.scratch0);
    this.noteCodeWrite(host - RAM_HOST_BASE + RAM_GPA_BASE, size);
    return true;
  }

  // ---- CSRs and system instructions ----

  csrAccess(csr: number, kind: 0 | 1 | 2, writes: boolean, insn: number): boolean {
    const csrs = this.csrs;
    if (!csrs.read(csr, writes)) return this.illegal(insn);
    const oldLo = csrs.value[0];
    const oldHi = csrs.value[1];
    if (writes) {
      csrs.modify(csr, kind, this.st.get32(HS.SCRATCH0), this.st.hi(HS.SCRATCH0));
      this.exitIfInterruptible();
    }
    this.setScratch0(oldLo, oldHi);
    return true;
  }

  ecall(): boolean {
    const priv = this.st.priv;
    if (priv === PRIV_S && this.sbi !== undefined && this.sbi(this)) {
      this.st.advancePc(4);
      return true;
    }
    return this.traps.exception(CAUSE.ECALL_U + priv, 0, 0);
  }

  ebreak(): false {
    return this.traps.exception(CAUSE.BREAKPOINT, this.st.pcLo(), this.st.pcHi());
  }

  mret(insn: number): boolean {
    if (this.st.priv !== PRIV_M) return this.illegal(insn);
    this.traps.mret();
    this.exitIfInterruptible();
    return true;
  }

  sret(insn: number): boolean {
    const priv = this.st.priv;
    if (priv === PRIV_U || (priv === PRIV_S && (this.st.mstatus & MSTATUS.TSR) !== 0)) return this.illegal(insn);
    this.traps.sret();
    this.exitIfInterruptible();
    return true;
  }

  wfi(insn: number): boolean {
    const priv = this.st.priv;
    if (priv === PRIV_U || (priv === PRIV_S && (this.st.mstatus & MSTATUS.TW) !== 0)) return this.illegal(insn);
    this.waitingForInterrupt = true;
    return true;
  }

  sfenceVma(vaLo: number, vaHi: number, hasAddr: boolean, _asid: number, _hasAsid: boolean, insn: number): boolean {
    const priv = this.st.priv;
    if (priv === PRIV_U || (priv === PRIV_S && (this.st.mstatus & MSTATUS.TVM) !== 0)) return this.illegal(insn);
    if (hasAddr) this.mmu.flushPage(vaLo, vaHi);
    else this.mmu.flush();
    return true;
  }

  fenceI(): void {
    this.codeCache?.invalidateAll();
  }

  raiseException(cause: number, tvalLo: number, tvalHi: number): false {
    return this.traps.exception(cause, tvalLo, tvalHi);
  }

  fpEnabled(): boolean {
    return (this.st.mstatus & MSTATUS.FS) !== 0;
  }

  fpDirty(): void {
    if ((this.st.mstatus & MSTATUS.FS) !== MSTATUS.FS_DIRTY) this.csrs.fpDirty();
  }

  checkInterrupts(): boolean {
    if (Atomics.exchange(this.i32, (this.stateBase + CSR_OFF.FLUSH_REQUEST) >> 2, 0) !== 0) {
      this.mmu.flush();
      this.codeCache?.invalidateAll();
    }
    return this.traps.takeInterrupt();
  }

  /** Drops every store-TLB entry that points into RAM page `page` ((gpa - RAM_GPA_BASE) >>> 12): it became a code page. */
  dropStorePage(page: number): void {
    this.mmu.dropStorePage(page);
  }

  // ---- helpers ----

  /** Word index of va's entry in `table` (TLB_LOAD, TLB_STORE, TLB_FETCH) of the current TLB set. */
  private tlbEntry(table: number, vaLo: number): number {
    return (this.i32[this.tlbSetWord]! + table + tlbIndex(vaLo) * TLB_ENTRY_SIZE) >> 2;
  }

  /**
   * A CSR write or xRET may make a pending interrupt takeable: set EXIT_REQUEST so the engine
   * calls checkInterrupts() at the next block boundary.
   */
  private exitIfInterruptible(): void {
    if (this.traps.pendingInterrupt() >= 0) Atomics.store(this.i32, (this.stateBase + HS.EXIT_REQUEST) >> 2, 1);
  }

  private illegal(insn: number): false {
    return this.traps.exception(CAUSE.ILLEGAL_INSTRUCTION, insn, 0);
  }

  private setScratch0(lo: number, hi: number): void {
    this.dv.setInt32(this.scratch0, lo | 0, true);
    this.dv.setInt32(this.scratch0 + 4, hi | 0, true);
  }

  /** Zero-extends the `size` bytes at host offset `host` into SCRATCH0. */
  private readHost(host: number, size: MemSize): void {
    const dv = this.dv;
    switch (size) {
      case 1:
        return this.setScratch0(this.u8[host], 0);
      case 2:
        return this.setScratch0(dv.getUint16(host, true), 0);
      case 4:
        return this.setScratch0(dv.getInt32(host, true), 0);
      default:
        return this.setScratch0(dv.getInt32(host, true), dv.getInt32(host + 4, true));
    }
  }

  /** Writes the low `size` bytes of SCRATCH0 at host offset `host`. */
  private writeHost(host: number, size: MemSize): void {
    const dv = this.dv;
    const s0 = this.scratch0;
    switch (size) {
      case 1:
        this.u8[host] = this.u8[s0];
        return;
      case 2:
        return dv.setUint16(host, dv.getUint16(s0, true), true);
      case 4:
        return dv.setInt32(host, dv.getInt32(s0, true), true);
      default:
        dv.setInt32(host, dv.getInt32(s0, true), true);
        dv.setInt32(host + 4, dv.getInt32(s0 + 4, true), true);
    }
  }

  /** Invalidates translated code if the RAM range [pa, pa + size) touches a code page. */
  private noteCodeWrite(pa: number, size: number): void {
    if (!this.mmu.isRam(pa, size)) return;
    const first = (pa - RAM_GPA_BASE) >>> 12;
    const last = (pa + size - 1 - RAM_GPA_BASE) >>> 12;
    for (let page = first; page <= last; page++) {
      if (this.u8[CODE_PAGE_MAP_BASE + page] !== 0) this.codeCache?.invalidatePage(RAM_GPA_BASE / 4096 + page);
    }
  }

  /** Host offset for an LR (load access) or SC/AMO (store access): aligned, RAM only; -1 after raising the fault. */
  private atomicHost(vaLo: number, vaHi: number, size: 4 | 8, access: AccessKind): number {
    if ((vaLo & (size - 1)) !== 0) {
      this.traps.exception(access === ACCESS_LOAD ? CAUSE.LOAD_MISALIGNED : CAUSE.STORE_MISALIGNED, vaLo, vaHi);
      return -1;
    }
    const e = this.tlbEntry(access === ACCESS_LOAD ? TLB_LOAD : TLB_STORE, vaLo);
    const i32 = this.i32;
    if (i32[e] === ((vaLo >>> 12) | (vaHi << 20)) && i32[e + 1] === vaHi >>> 12) return (vaLo + i32[e + 2]) >>> 0;
    const pa = this.mmu.translate(vaLo, vaHi, access, size);
    if (pa < 0) return -1;
    if (!this.mmu.isRam(pa, size)) {
      this.traps.exception(ACCESS_FAULT_CAUSE[access], vaLo, vaHi);
      return -1;
    }
    return pa - RAM_GPA_BASE + RAM_HOST_BASE;
  }

  /**
   * A load or store that crosses a page boundary: translate both parts, then move bytes one at a time.
   * A part outside RAM is moved first, so a store that faults on a missing device leaves RAM untouched.
   */
  private crossPage(vaLo: number, vaHi: number, size: MemSize, access: AccessKind): boolean {
    const firstBytes = 4096 - (vaLo & 0xfff);
    const next = ((vaLo & ~0xfff) >>> 0) + 4096;
    const nextLo = next | 0;
    const nextHi = next >= TWO32 ? vaHi + 1 : vaHi;
    const pa1 = this.mmu.translate(vaLo, vaHi, access, firstBytes);
    if (pa1 < 0) return false;
    const pa2 = this.mmu.translate(nextLo, nextHi, access, size - firstBytes);
    if (pa2 < 0) return false;
    const loaded = this.crossPageBytes.fill(0);
    const secondFirst = this.mmu.isRam(pa1, firstBytes) && !this.mmu.isRam(pa2, size - firstBytes);
    for (let k = 0; k < 2; k++) {
      const second = (k === 0) === secondFirst;
      const ok = second
        ? this.movePart(pa2, firstBytes, size - firstBytes, access, loaded)
        : this.movePart(pa1, 0, firstBytes, access, loaded);
      if (!ok) return this.traps.exception(ACCESS_FAULT_CAUSE[access], second ? nextLo : vaLo, second ? nextHi : vaHi);
    }
    if (access === ACCESS_LOAD) {
      this.u8.set(loaded, this.scratch0);
    } else {
      this.noteCodeWrite(pa1, firstBytes);
      this.noteCodeWrite(pa2, size - firstBytes);
    }
    return true;
  }

  /** Moves bytes [from, from + count) of a page-crossing access to or from physical address pa. */
  private movePart(pa: number, from: number, count: number, access: AccessKind, loaded: Uint8Array): boolean {
    for (let i = 0; i < count; i++) {
      const ok =
        access === ACCESS_LOAD
          ? this.readPhysByte(pa + i, loaded, from + i)
          : this.writePhysByte(pa + i, this.u8[this.scratch0 + from + i]);
      if (!ok) return false;
    }
    return true;
  }

  private readPhysByte(pa: number, into: Uint8Array, index: number): boolean {
    if (this.mmu.isRam(pa, 1)) {
      into[index] = this.u8[pa - RAM_GPA_BASE + RAM_HOST_BASE];
      return true;
    }
    if (!this.mmio.load(pa, 1)) return false;
    into[index] = this.mmio.lo;
    return true;
  }

  private writePhysByte(pa: number, value: number): boolean {
    if (this.mmu.isRam(pa, 1)) {
      this.u8[pa - RAM_GPA_BASE + RAM_HOST_BASE] = value;
      return true;
    }
    return this.mmio.store(pa, 1, value, 0);
  }
}
