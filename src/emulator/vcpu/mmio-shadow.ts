/**
 * Register shadows: a device's side-effect-free register reads answered on
 * the vCPU thread, without a mailbox round trip to the main thread.
 *
 * Theory of operation. Linux polls the UART's LSR before every console byte;
 * through the mailbox each poll would wait for the main thread. A device that
 * can tell what a read of a register would return when the read has no side
 * effects (ShadowSource.peek) gets a shadow: one i32 word per register in the
 * machine-shared area (SHADOW_BASE, SHADOW_REGISTERS words per slot), which
 * the main thread rewrites after every change of the device's state
 * (ShadowWriter, called from the device's onChange). A word holds the byte
 * value and two flags:
 *
 *   READ  the read has no side effects: a vCPU thread answers it from the word
 *   KEEP  a one-byte store here changes no word that has READ (the UART's THR
 *         outside loopback and DLAB): a vCPU thread posts it (mailbox.ts post)
 *         instead of waiting for it
 *
 * On a vCPU thread (ShadowReader) a load of a READ register is answered from
 * the word; every other load, and every store that is not KEEP, goes through
 * the mailbox and waits, and the main thread has rewritten the words before
 * it answers. So an answer from the shadow is never older than the hart's own
 * earlier accesses: its stores still in flight are KEEP stores, which change
 * no READ word. Input from the host can change a word at any time, as it can
 * change the device between any two accesses.
 *
 * Limits: loads of 1, 2 or 4 bytes, naturally aligned, at offsets below the
 * source's register count, each answered with the byte value zero-extended
 * (as the 16550 answers any width); SHADOW_SLOTS devices of at most
 * SHADOW_REGISTERS registers. Harts racing on one device see its accesses in
 * an order the main thread picks, as they do through the mailbox.
 */
import { MAILBOX_END } from './mailbox.js';

/** What a shadowed device tells about its registers (the 16550 UART implements it). */
export interface ShadowSource {
  /** Registers at offsets 0 up to this are shadowed. */
  readonly peekable: number;
  /** What a read at `offset` would return if the read has no side effects, else -1. */
  peek(offset: number): number;
  /** True when a byte store at `offset` leaves every peek() answer unchanged. */
  storeKeepsPeeks(offset: number): boolean;
}

/** A shadowed device window: its guest-physical base, its register count and its shadow slot. */
export interface ShadowWindow {
  readonly base: number;
  readonly registers: number;
  readonly slot: number;
}

export const SHADOW_SLOTS = 4;
export const SHADOW_REGISTERS = 64;
const SHADOW_BASE = (MAILBOX_END + 63) & ~63;
/** First byte after the shadows in the machine-shared area. */
export const SHADOW_END = SHADOW_BASE + SHADOW_SLOTS * SHADOW_REGISTERS * 4;

const READ = 0x100;
const KEEP = 0x200;
const VALUE = 0xff;

function slotWord(slot: number): number {
  if (!Number.isInteger(slot) || slot < 0 || slot >= SHADOW_SLOTS) throw new RangeError(`shadow slot ${slot} does not exist`);
  return (SHADOW_BASE >> 2) + slot * SHADOW_REGISTERS;
}

/** The main thread's side: rewrites a slot's words from its device. */
export class ShadowWriter {
  private readonly i32: Int32Array;
  private readonly first: number;
  readonly window: ShadowWindow;

  constructor(memory: WebAssembly.Memory, slot: number, base: number, private readonly source: ShadowSource) {
    if (source.peekable > SHADOW_REGISTERS) throw new RangeError(`a shadow holds ${SHADOW_REGISTERS} registers, not ${source.peekable}`);
    this.i32 = new Int32Array(memory.buffer);
    this.first = slotWord(slot);
    this.window = { base, registers: source.peekable, slot };
    this.update();
  }

  /** Brings every word up to date with the device (call after any change of its state). */
  update(): void {
    const { source, i32, first } = this;
    for (let offset = 0; offset < source.peekable; offset++) {
      const value = source.peek(offset);
      const word = (value < 0 ? 0 : READ | (value & VALUE)) | (source.storeKeepsPeeks(offset) ? KEEP : 0);
      Atomics.store(i32, first + offset, word);
    }
  }
}

/** A vCPU thread's side: answers loads from, and classifies stores by, the shadows of its windows. */
export class ShadowReader {
  private readonly i32: Int32Array;
  private readonly windows: readonly { base: number; end: number; first: number }[];
  /** The value of the last load() that returned true. */
  value = 0;

  constructor(memory: WebAssembly.Memory, windows: readonly ShadowWindow[]) {
    this.i32 = new Int32Array(memory.buffer);
    this.windows = windows.map((w) => ({ base: w.base, end: w.base + w.registers, first: slotWord(w.slot) }));
  }

  /** The shadow word for gpa, or 0 (no flags) when no window holds it. */
  private word(gpa: number): number {
    for (const w of this.windows) {
      if (gpa >= w.base && gpa < w.end) return Atomics.load(this.i32, w.first + gpa - w.base);
    }
    return 0;
  }

  /** Answers a load of `size` bytes at gpa from the shadow (into `value`); false: ask the device. */
  load(gpa: number, size: number): boolean {
    if (size > 4 || gpa % size !== 0) return false;
    const word = this.word(gpa);
    if ((word & READ) === 0) return false;
    this.value = word & VALUE;
    return true;
  }

  /** True when a one-byte store at gpa may be posted (it changes no shadowed answer). */
  keeps(gpa: number): boolean {
    return (this.word(gpa) & KEEP) !== 0;
  }
}
