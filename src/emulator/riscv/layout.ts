/**
 * The shared-memory layout of a RISC-V machine: the one contract between the
 * interpreter, the JIT, the MMU, the SBI and the vCPU threads.
 *
 * Theory of operation. A machine owns one shared, 32-bit-indexed
 * WebAssembly.Memory. Everything a vCPU thread touches on its hot path lives in
 * it, so translated WebAssembly code and the JS interpreter see the same bytes
 * and a hart's state can be handed from one engine to the other at any
 * instruction boundary:
 *
 *   0x0000_0000  scratch (never a guest address; keep the first 64 KiB unused)
 *   0x0001_0000  hart state blocks, HART_STATE_SIZE each (HART_STATE_BASE)
 *   0x0020_0000  code-page map: one byte per 4 KiB page of guest RAM (CODE_PAGE_MAP_BASE)
 *   0x0030_0000  machine-shared words: the MMIO mailboxes, the timebase origin (MACHINE_SHARED_BASE)
 *   0x0040_0000  JIT jump caches, JUMP_CACHE_SIZE i32 words per hart (jumpCacheBase)
 *   0x0080_0000  software TLBs, TLB_STRIDE each (TLB_BASE)
 *   0x0200_0000  guest RAM: guest-physical RAM_GPA_BASE maps to host offset RAM_HOST_BASE
 *
 * Values are little-endian. 64-bit values cross the JS/WebAssembly boundary as
 * two 32-bit halves or through memory, never as BigInt: a JS helper called by
 * translated code takes i32/f64 parameters, returns an i32 status, and passes
 * a 64-bit result through the hart's SCRATCH slots.
 *
 * Hart state block (byte offsets inside one block):
 *   X      x0..x31, 8 bytes each (x0 always reads 0; writes to it are dropped)
 *   F      f0..f31, 8 bytes each, NaN-boxed singles
 *   PC     the pc of the next instruction to run (8 bytes)
 *   PRIV   current privilege mode: 0 U, 1 S, 3 M (i32)
 *   FFLAGS accrued FP exception flags, 5 bits (i32); FRM rounding mode (i32)
 *   EXIT_REQUEST  non-zero asks the running engine to return at the next block
 *          boundary (other threads set it with Atomics; the engine clears it)
 *   MIP    the mip CSR's pending bits (i32; devices and other harts set bits with Atomics.or)
 *   RESERVATION_ADDR / RESERVATION_VALUE  LR/SC reservation (address -1 = none)
 *   INSTRET retired-instruction count (8 bytes)
 *   SCRATCH0..3  8-byte slots for values passed between translated code and JS helpers
 *   JIT_BUDGET  the low word of SCRATCH3 (i32): instructions translated code may still
 *          run before it returns to the JIT's dispatcher (jit/engine.ts); only the JIT
 *          uses it, and no JS helper that translated code calls touches SCRATCH3
 *   TLB_SET  the offset of the hart's current TLB set in the shared memory (i32; see below)
 *   CSR_AREA..HART_STATE_SIZE  owned by csr.ts (the other CSRs, at offsets it defines)
 *
 * Software TLB (per hart, at tlbBase(hart)): TLB_SETS sets, one per recent
 * translation context (privilege, effective data privilege, SUM, MXR: the MMU
 * picks them, priv/mmu.ts); the TLB_SET word of the state block holds the
 * offset of the current one, which engines read at every lookup (translated
 * code once per block: nothing inside a block changes the context). A set is
 * three tables of TLB_ENTRIES entries, for loads, stores and instruction
 * fetches (TLB_LOAD, TLB_STORE, TLB_FETCH from the set's offset). Entry i of a
 * table is TLB_ENTRY_SIZE bytes: a tag (i64: the virtual page number va >>> 12,
 * or -1 for an empty entry) then an addend (i32): the host address of a byte
 * is wrap32(va) + addend. The index is tlbIndex(va): the page number's low bits
 * with the next ones folded in, so pages a multiple of TLB_ENTRIES apart (a
 * kernel's text and its data) do not evict each other. Only guest-RAM pages
 * that the access may touch without a trap get an entry (never MMIO, never a
 * page whose A or D bit would have to be set, never a store entry for a page
 * in the code-page map); everything else takes the slow path. The MMU fills
 * entries and empties every set on satp and PMP writes and sfence.vma.
 *
 * JIT jump cache (per hart, at jumpCacheBase(hart)): JUMP_CACHE_SIZE i32
 * words, each the code cache's table slot of a block it entered last at that
 * index (jumpCacheIndex: a hash of the host offset), or 0 (none). Only the JIT
 * reads or writes it; a hart reset leaves it alone (a stale slot is harmless:
 * every block checks the host it was entered for).
 *
 * Code-page map: byte p is non-zero while some hart holds translated code for
 * guest-RAM page p ((gpa - RAM_GPA_BASE) >>> 12). A store to such a page goes
 * through the slow path, which invalidates the translations of that page.
 */

export const WASM_PAGE = 65536;

export const HART_STATE_BASE = 0x0001_0000;
export const HART_STATE_SIZE = 0x1000;
export const MAX_HARTS = 64;

export const TLB_ENTRIES = 1024;
/** log2(TLB_ENTRIES): the page-number bits above the index that tlbIndex folds into it start here. */
export const TLB_FOLD = 10;
export const TLB_ENTRY_SIZE = 16;
export const TLB_TABLE_SIZE = TLB_ENTRIES * TLB_ENTRY_SIZE;
export const TLB_LOAD = 0;
export const TLB_STORE = TLB_TABLE_SIZE;
export const TLB_FETCH = 2 * TLB_TABLE_SIZE;
/** One set: the three tables of one translation context. */
export const TLB_SET_SIZE = 3 * TLB_TABLE_SIZE;
/** Sets per hart (translation contexts kept at once: U, S, S with SUM, M). */
export const TLB_SETS = 4;
export const TLB_STRIDE = TLB_SETS * TLB_SET_SIZE;

export const CODE_PAGE_MAP_BASE = 0x0020_0000;
export const MACHINE_SHARED_BASE = 0x0030_0000;

export const JUMP_CACHE_BASE = 0x0040_0000;
/** Entries per hart (a power of two): a kernel's boot enters tens of thousands of blocks. */
export const JUMP_CACHE_SIZE = 16384;
/** Bits of the host offset above the index that are folded into it. */
export const JUMP_CACHE_FOLD = 15;

export const TLB_BASE = 0x0080_0000;

export const RAM_HOST_BASE = 0x0200_0000;
export const RAM_GPA_BASE = 0x8000_0000;
/** The largest -m that fits in a 32-bit memory after the areas above. */
export const MAX_RAM_BYTES = 0x1_0000_0000 - RAM_HOST_BASE - WASM_PAGE;

/** Offsets inside a hart state block. */
export const HS = {
  X: 0,
  F: 256,
  PC: 512,
  PRIV: 520,
  FFLAGS: 524,
  FRM: 528,
  EXIT_REQUEST: 532,
  RESERVATION_ADDR: 536,
  RESERVATION_VALUE: 544,
  INSTRET: 552,
  MIP: 560,
  SCRATCH0: 576,
  SCRATCH1: 584,
  SCRATCH2: 592,
  SCRATCH3: 600,
  /** Alias of SCRATCH3's low word: the JIT's instruction budget. */
  JIT_BUDGET: 600,
  /** Offset of the current TLB set (i32). */
  TLB_SET: 608,
  CSR_AREA: 1024,
} as const;

export const PRIV_U = 0;
export const PRIV_S = 1;
export const PRIV_M = 3;

/** QEMU's virt machine counts mtime at 10 MHz; the device tree says so in timebase-frequency. */
export const TIMEBASE_HZ = 10_000_000;

export function hartStateBase(hart: number): number {
  return HART_STATE_BASE + hart * HART_STATE_SIZE;
}

export function tlbBase(hart: number): number {
  return TLB_BASE + hart * TLB_STRIDE;
}

/** Index of va's entry in a TLB table (translated code computes the same from the page number's low word). */
export function tlbIndex(vaLo: number): number {
  return ((vaLo >>> 12) ^ (vaLo >>> (12 + TLB_FOLD))) & (TLB_ENTRIES - 1);
}

export function jumpCacheBase(hart: number): number {
  return JUMP_CACHE_BASE + hart * JUMP_CACHE_SIZE * 4;
}

/** The jump-cache entry of the block at host offset `host` (translated code computes the same). */
export function jumpCacheIndex(host: number): number {
  return ((host >>> 1) ^ (host >>> JUMP_CACHE_FOLD)) & (JUMP_CACHE_SIZE - 1);
}

/** Host offset of guest RAM for `ramBytes` of RAM, in WebAssembly pages (for WebAssembly.Memory's `initial`). */
export function memoryPagesFor(ramBytes: number): number {
  if (ramBytes <= 0 || ramBytes > MAX_RAM_BYTES) {
    throw new RangeError(`guest RAM of ${ramBytes} bytes does not fit: at most ${MAX_RAM_BYTES} bytes`);
  }
  return Math.ceil((RAM_HOST_BASE + ramBytes) / WASM_PAGE);
}
