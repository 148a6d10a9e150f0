/**
 * Register shadows: a device's side-effect-free register reads answered on
 * the vCPU thread, without a mailbox round trip to the main thread.
 *
 * Theory of operation. Linux polls the UART's LSR before every console byte,
 * and reads a virtio-mmio device's InterruptStatus in every interrupt; through
 * the mailbox each such read would wait for the main thread. A device that
 * can tell what a read of a register would return when the read has no side
 * effects (ShadowSource.peek) gets a shadow: one i32 word per register in the
 * machine-shared area (SHADOW_BASE, SHADOW_REGISTERS words per slot), which
 * the main thread rewrites after every change of the device's state
 * (ShadowWriter, called from the device's change hook). Registers are
 * `stride` bytes apart (1 for the UART's byte registers, 4 for virtio-mmio's
 * words). A word holds the register's value (its low byte) and two flags:
 *
 *   READ  the read has no side effects: a vCPU thread answers it from the word
 *   KEEP  a store of `stride` bytes here changes no word that has READ before
 *         the device's own asynchronous work does (the UART's THR outside
 *         loopback and DLAB; virtio-mmio's QueueNotify, whose effects, used
 *         buffers and interrupts, come later by the virtio spec anyway): a
 *         vCPU thread posts it (mailbox.ts post) instead of waiting for it
 *
 * A device may also keep a write-1-to-clear status register in its shadow
 * itself (ShadowSource.clearable: virtio-mmio's InterruptStatus, cleared
 * through InterruptACK): the word is then the device's state (SharedStatus,
 * which the device sets bits of, virtio/interrupt-status.ts), update() leaves
 * it alone, and a vCPU thread serves a store to the acknowledge register
 * itself: it clears the bits in the word and drives the device's PLIC wire
 * (ShadowWindow.acknowledge names it) with followStatus(), as the device
 * does after setting bits, so the line ends up following the word.
 *
 * On a vCPU thread (ShadowReader) a load of a READ register is answered from
 * the word, an acknowledgement is served as above; every other load, and
 * every store that is not KEEP, goes through the mailbox and waits, and the
 * main thread has rewritten the words before it answers. So an answer from
 * the shadow is never older than the hart's own earlier accesses: its stores
 * still in flight are KEEP stores, which change no READ word by themselves.
 * Input from the host (and a device's completed work) can change a word at
 * any time, as it can change the device between any two accesses; a device
 * that raises an interrupt rewrites its words before it raises the line (its
 * line is a ShadowedLine, or its status word is set before followStatus()),
 * so a hart that takes the interrupt reads the state that caused it.
 *
 * Limits: loads of at least `stride` and at most 4 bytes, naturally aligned
 * on a register, each answered with the low byte of the value zero-extended
 * (as the 16550 answers any width; virtio-mmio's shadowed registers fit in a
 * byte); posted stores and acknowledgements are exactly `stride` bytes (the
 * acknowledge register may lie past the shadowed ones); SHADOW_SLOTS devices of
 * at most SHADOW_REGISTERS registers. Harts racing on one device see its
 * accesses in an order the main thread picks, as they do through the mailbox.
 */
import type { IrqLine } from '../bus/interfaces.js';
import { followStatus, type InterruptStatus } from '../virtio/interrupt-status.js';
import { MAILBOX_END } from './mailbox.js';

/** What a shadowed device tells about its registers (the 16550 UART and virtio-mmio implement it). */
export interface ShadowSource {
  /** The first `peekable` registers (offsets 0, stride, 2·stride, ...) are shadowed. */
  readonly peekable: number;
  /** Bytes from one register to the next (1 or 4; 1 when left out); also the size of a posted store. */
  readonly stride?: number;
  /** What a read at `offset` would return if the read has no side effects, else -1. */
  peek(offset: number): number;
  /** True when a store of `stride` bytes at `offset` leaves every peek() answer unchanged (see KEEP). */
  storeKeepsPeeks(offset: number): boolean;
  /** A write-1-to-clear status register and the register whose stores clear its bits (offsets), if the device has one. */
  readonly clearable?: { readonly status: number; readonly acknowledge: number };
}

/** A shadowed device window: its guest-physical base, its register count and stride, and its shadow slot. */
export interface ShadowWindow {
  readonly base: number;
  readonly registers: number;
  readonly stride: number;
  readonly slot: number;
  /** Served on the vCPU thread: stores at `offset` clear bits of register `status`, then drive PLIC source `line`. */
  readonly acknowledge?: { readonly offset: number; readonly status: number; readonly line: number };
}

/** The UART and the virt machine's eight virtio-mmio slots, with room to spare. */
export const SHADOW_SLOTS = 16;
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

/**
 * A clearable status register kept in its shadow word: the device's interrupt
 * status, shared by the main thread (which sets bits) and the vCPU threads
 * (which clear them). The ShadowWriter of its slot marks the word readable.
 */
export class SharedStatus implements InterruptStatus {
  private readonly i32: Int32Array;
  private readonly word: number;

  constructor(memory: WebAssembly.Memory, readonly slot: number, readonly register: number) {
    if (!Number.isInteger(register) || register < 0 || register >= SHADOW_REGISTERS) throw new RangeError(`shadow register ${register} does not exist`);
    this.i32 = new Int32Array(memory.buffer);
    this.word = slotWord(slot) + register;
  }

  get value(): number {
    return Atomics.load(this.i32, this.word) & VALUE;
  }

  set(bits: number): void {
    Atomics.or(this.i32, this.word, bits & VALUE);
  }

  clear(bits: number): void {
    Atomics.and(this.i32, this.word, ~(bits & VALUE));
  }
}

/** The main thread's side: rewrites a slot's words from its device. */
export class ShadowWriter {
  private readonly i32: Int32Array;
  private readonly first: number;
  private readonly stride: number;
  /** The register kept by a SharedStatus, which update() leaves alone (-1: none). */
  private readonly live: number;
  readonly window: ShadowWindow;

  /**
   * With `clear`, the device keeps its clearable status register (source.clearable) in `clear.status`, a
   * SharedStatus of this slot, and vCPU threads serve its acknowledgements, driving PLIC source `clear.line`.
   */
  constructor(
    memory: WebAssembly.Memory,
    slot: number,
    base: number,
    private readonly source: ShadowSource,
    clear?: { status: SharedStatus; line: number },
  ) {
    if (source.peekable > SHADOW_REGISTERS) throw new RangeError(`a shadow holds ${SHADOW_REGISTERS} registers, not ${source.peekable}`);
    this.i32 = new Int32Array(memory.buffer);
    this.first = slotWord(slot);
    this.stride = source.stride ?? 1;
    this.live = clear ? this.liveRegister(slot, clear.status) : -1;
    const acknowledge = clear && source.clearable && { offset: source.clearable.acknowledge, status: this.live, line: clear.line };
    this.window = { base, registers: source.peekable, stride: this.stride, slot, ...(acknowledge && { acknowledge }) };
    if (clear) Atomics.or(this.i32, this.first + this.live, READ);
    this.update();
  }

  /** The register `status` keeps: the source's clearable status register, in this slot. */
  private liveRegister(slot: number, status: SharedStatus): number {
    const clearable = this.source.clearable;
    if (!clearable || status.slot !== slot || status.register * this.stride !== clearable.status || status.register >= this.source.peekable) {
      throw new RangeError(`shadow slot ${slot}: register ${status.register} of slot ${status.slot} is not the device's clearable status register`);
    }
    return status.register;
  }

  /** Brings every word up to date with the device (call after any change of its state). */
  update(): void {
    const { source, i32, first } = this;
    for (let register = 0; register < source.peekable; register++) {
      if (register === this.live) continue;
      const offset = register * this.stride;
      const value = source.peek(offset);
      const word = (value < 0 ? 0 : READ | (value & VALUE)) | (source.storeKeepsPeeks(offset) ? KEEP : 0);
      Atomics.store(i32, first + register, word);
    }
  }
}

/**
 * A shadowed device's interrupt line: every move first rewrites the device's
 * shadow, so a hart taking the interrupt reads its cause there. The shadow is
 * attached once made (it needs the device, which needs this line first).
 */
export class ShadowedLine implements IrqLine {
  shadow: ShadowWriter | null = null;

  constructor(private readonly line: IrqLine) {}

  set(level: boolean): void {
    this.shadow?.update();
    this.line.set(level);
  }
}

interface Window {
  base: number;
  end: number;
  stride: number;
  first: number;
  /** An acknowledge register served here: its address, the status it clears and the line that follows it. */
  acknowledge: { gpa: number; status: SharedStatus; line: IrqLine } | null;
}

/** A vCPU thread's side: answers loads from, serves acknowledgements of, and classifies stores by, the shadows of its windows. */
export class ShadowReader {
  private readonly i32: Int32Array;
  private readonly windows: readonly Window[];
  /** The value of the last load() that returned true. */
  value = 0;

  /** `wire` gives the PLIC wire of a source, for windows with an acknowledge register. */
  constructor(memory: WebAssembly.Memory, windows: readonly ShadowWindow[], wire?: (source: number) => IrqLine) {
    this.i32 = new Int32Array(memory.buffer);
    this.windows = windows.map((w) => {
      const ack = w.acknowledge;
      if (ack && !wire) throw new Error(`the shadow at 0x${w.base.toString(16)} serves acknowledgements and needs its interrupt wire`);
      return {
        base: w.base,
        end: w.base + w.registers * w.stride,
        stride: w.stride,
        first: slotWord(w.slot),
        acknowledge: ack && wire ? { gpa: w.base + ack.offset, status: new SharedStatus(memory, w.slot, ack.status), line: wire(ack.line) } : null,
      };
    });
  }

  private windowOf(gpa: number): Window | undefined {
    for (const w of this.windows) if (gpa >= w.base && gpa < w.end) return w;
    return undefined;
  }

  /** The shadow word of the register at gpa in window w, or 0 (no flags) between registers. */
  private word(w: Window, gpa: number): number {
    const offset = gpa - w.base;
    return offset % w.stride === 0 ? Atomics.load(this.i32, w.first + offset / w.stride) : 0;
  }

  /** Answers a load of `size` bytes at gpa from the shadow (into `value`); false: ask the device. */
  load(gpa: number, size: number): boolean {
    if (size > 4 || gpa % size !== 0) return false;
    const w = this.windowOf(gpa);
    if (!w || size < w.stride) return false;
    const word = this.word(w, gpa);
    if ((word & READ) === 0) return false;
    this.value = word & VALUE;
    return true;
  }

  /** Serves a store of `size` bytes at gpa if it is an acknowledgement (a register's own width): clears the bits, drives the line. */
  acknowledge(gpa: number, size: number, value: number): boolean {
    for (const w of this.windows) {
      const ack = w.acknowledge;
      if (ack?.gpa !== gpa) continue;
      if (size !== w.stride) return false;
      ack.status.clear(value);
      followStatus(ack.status, ack.line);
      return true;
    }
    return false;
  }

  /** True when a store of `size` bytes at gpa may be posted (a register's own width; it changes no shadowed answer). */
  keeps(gpa: number, size: number): boolean {
    const w = this.windowOf(gpa);
    return w !== undefined && size === w.stride && (this.word(w, gpa) & KEEP) !== 0;
  }
}
