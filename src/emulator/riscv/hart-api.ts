/**
 * The services a hart offers to its execution engines (the interpreter and the
 * JIT): everything that is not plain register arithmetic. hart.ts implements
 * it (privileged architecture: CSRs, traps, interrupts, the MMU and its TLB
 * fill, PMP); the engines call it on their slow paths.
 *
 * Conventions (see layout.ts): the hart's architectural state lives in its
 * state block in the shared memory, so engines read and write x/f/pc there.
 * Virtual addresses are passed as two 32-bit halves (lo, hi) — lo is an
 * unsigned or signed 32-bit number, hi the upper 32 bits as a signed number.
 * 64-bit data moves through the SCRATCH0 slot of the state block.
 *
 * Trap protocol: a method returns false (or a negative number, where it
 * returns an address) when it took a trap; it has then already written the
 * trap CSRs and set PC to the handler, and the engine must stop the current
 * instruction and block without writing any result (retired counts exclude
 * it). Before calling a method that can trap, an engine stores the faulting
 * instruction's pc into PC (so epc is right).
 */

export type MemSize = 1 | 2 | 4 | 8;

/** AMO operations, named after their instructions (amoswap.w → 'swap'). */
export type AmoOp = 'swap' | 'add' | 'xor' | 'and' | 'or' | 'min' | 'max' | 'minu' | 'maxu';

export interface HartServices {
  readonly id: number;
  readonly memory: WebAssembly.Memory;
  /** Offset of this hart's state block (layout.ts hartStateBase(id)). */
  readonly stateBase: number;

  /**
   * Translates and performs a load of `size` bytes (zero-extended into the 8
   * bytes of SCRATCH0). Handles misaligned accesses, MMIO, page faults,
   * access faults and PMP. Fills the load TLB for RAM pages. False: trapped.
   */
  load(vaLo: number, vaHi: number, size: MemSize): boolean;
  /** Stores the low `size` bytes of SCRATCH0 at va; invalidates translated code on a code page. False: trapped. */
  store(vaLo: number, vaHi: number, size: MemSize): boolean;
  /**
   * Host offset (in the shared memory) of the instruction parcel at va for
   * fetching, valid up to the end of its 4 KiB page; fills the fetch TLB. -1: trapped
   * (instruction page fault / access fault; a fetch from MMIO is an access fault).
   */
  fetchHost(vaLo: number, vaHi: number): number;

  /** lr.w/lr.d: loads (sign-extended into SCRATCH0 for .w) and sets the reservation. False: trapped. */
  loadReserved(vaLo: number, vaHi: number, size: 4 | 8): boolean;
  /** sc.w/sc.d: stores SCRATCH0 if the reservation holds; writes 0 (success) or 1 into SCRATCH1. False: trapped. */
  storeConditional(vaLo: number, vaHi: number, size: 4 | 8): boolean;
  /** AMO with operand SCRATCH0; atomic across vCPU threads; the old value (sign-extended for .w) goes to SCRATCH0. False: trapped. */
  amo(op: AmoOp, vaLo: number, vaHi: number, size: 4 | 8): boolean;

  /**
   * csrrw/csrrs/csrrc and their immediate forms. `kind` 0 = write, 1 = set, 2 = clear;
   * the operand is in SCRATCH0; `writes` is false for csrrs/csrrc with rs1 = x0 (or uimm 0),
   * which must not write (nor trap on a read-only CSR). The old value goes to SCRATCH0.
   * False: trapped (illegal instruction, with `insn` as tval). A true return may still
   * have changed the translation context or interrupt state: engines end the block after a CSR access.
   */
  csrAccess(csr: number, kind: 0 | 1 | 2, writes: boolean, insn: number): boolean;

  /** ecall, ebreak: always trap (ecall from S-mode may instead be served by tsemu's SBI; then true and PC = pc + 4). */
  ecall(): boolean;
  ebreak(): false;
  /** mret/sret: false when illegal in this mode (trap taken); otherwise PC is the return address. */
  mret(insn: number): boolean;
  sret(insn: number): boolean;
  /** wfi: false when illegal (TW); otherwise the engine returns to the vCPU loop, which may sleep. */
  wfi(insn: number): boolean;
  /** sfence.vma rs1, rs2 (values as halves; hasAddr/hasAsid false for x0): flushes TLBs. False: illegal (TVM). */
  sfenceVma(vaLo: number, vaHi: number, hasAddr: boolean, asid: number, hasAsid: boolean, insn: number): boolean;
  /** fence.i: drops this hart's translated code. */
  fenceI(): void;
  /** Raises a synchronous exception (cause per the privileged spec, tval as halves). Always returns false. */
  raiseException(cause: number, tvalLo: number, tvalHi: number): false;
  /** True when FP instructions are enabled (mstatus.FS != Off); callers raise illegal instruction otherwise. */
  fpEnabled(): boolean;
  /** Marks FP state dirty (mstatus.FS = Dirty, SD) after an FP register or fcsr write. */
  fpDirty(): void;
  /** Drops every store-TLB entry that points into RAM page `page` ((gpa - RAM_GPA_BASE) >>> 12): it just became a code page. */
  dropStorePage(page: number): void;
  /**
   * Takes a pending and enabled interrupt if there is one (sets PC to the handler) and returns
   * true; engines call it at block boundaries when EXIT_REQUEST or MIP changed.
   */
  checkInterrupts(): boolean;
}

/** Registered by the JIT so a store to a code page, fence.i or sfence.vma can drop translations. */
export interface CodeCacheHooks {
  /** Drops translated code of guest-physical page `gpaPage` (gpa >>> 12). */
  invalidatePage(gpaPage: number): void;
  /** Drops all translated code of this hart. */
  invalidateAll(): void;
}
