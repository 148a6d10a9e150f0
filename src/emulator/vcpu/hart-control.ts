/**
 * Per-hart control blocks in the machine-shared area (layout.ts
 * MACHINE_SHARED_BASE + 0x1000, HART_CONTROL_SIZE bytes per hart): the SBI HSM
 * state of each hart and the word a sleeping vCPU thread waits on.
 *
 *   HSM_STATE   i32  the SBI HSM state (HSM.*); STARTED harts run, STOPPED ones
 *                    wait for START_PENDING, SUSPENDED ones wait for an interrupt
 *   WAKE        i32  bumped (Atomics.add) and notified by anyone who wants a
 *                    sleeping hart to look again: an interrupt raised, a start
 *                    request, a stop of the machine
 *   SUSPEND_NONRETENTIVE  i32  1 when the SUSPENDED state resumes at START_ADDR
 *   START_ADDR, START_OPAQUE  8 bytes each: where a started or non-retentively
 *                    resumed hart begins, and the a1 value it gets
 *
 *   START_LOCK  i32  held (1) by the thread filling in START_ADDR for a hart_start
 *
 * After the per-hart blocks (MAX_HARTS of them) comes one machine word, RUN:
 * 1 while the machine runs; the main thread stores 0 (and wakes every hart)
 * to make every vCPU loop return.
 *
 * Any thread may read and change these words, always with Atomics; the hart's
 * own vCPU thread is the only one that moves it out of START_PENDING.
 */
import { HS, MACHINE_SHARED_BASE, MAX_HARTS, hartStateBase } from '../riscv/layout.js';
import { MIP_MEIP, MIP_SEIP } from '../riscv/priv/csr-defs.js';

export const HART_CONTROL_BASE = MACHINE_SHARED_BASE + 0x1000;
export const HART_CONTROL_SIZE = 64;

const HSM_STATE = 0;
const WAKE = 4;
const SUSPEND_NONRETENTIVE = 8;
const START_ADDR = 16;
const START_OPAQUE = 24;
const START_LOCK = 32;
/** The machine's RUN word. */
export const MACHINE_RUN = HART_CONTROL_BASE + MAX_HARTS * HART_CONTROL_SIZE;
/** First byte after the hart control area (the MMIO mailboxes start here). */
export const HART_CONTROL_END = MACHINE_RUN + 64;

/** SBI HSM hart states (SBI spec, HSM extension). */
export const HSM = {
  STARTED: 0,
  STOPPED: 1,
  START_PENDING: 2,
  STOP_PENDING: 3,
  SUSPENDED: 4,
  SUSPEND_PENDING: 5,
  RESUME_PENDING: 6,
} as const;

export class HartControl {
  private readonly i32: Int32Array;

  constructor(memory: WebAssembly.Memory) {
    this.i32 = new Int32Array(memory.buffer);
  }

  private index(hart: number, field: number): number {
    if (hart < 0 || hart >= MAX_HARTS) throw new RangeError(`hart ${hart} does not exist`);
    return (HART_CONTROL_BASE + hart * HART_CONTROL_SIZE + field) >> 2;
  }

  running(): boolean {
    return Atomics.load(this.i32, MACHINE_RUN >> 2) === 1;
  }

  setRunning(on: boolean): void {
    Atomics.store(this.i32, MACHINE_RUN >> 2, on ? 1 : 0);
  }

  /** Takes the hart's start lock; false when another thread holds it. */
  lockStart(hart: number): boolean {
    return Atomics.compareExchange(this.i32, this.index(hart, START_LOCK), 0, 1) === 0;
  }

  unlockStart(hart: number): void {
    Atomics.store(this.i32, this.index(hart, START_LOCK), 0);
  }

  state(hart: number): number {
    return Atomics.load(this.i32, this.index(hart, HSM_STATE));
  }

  setState(hart: number, state: number): void {
    Atomics.store(this.i32, this.index(hart, HSM_STATE), state);
  }

  /** Moves hart from `from` to `to` if it is in `from`; true when it did. */
  transition(hart: number, from: number, to: number): boolean {
    return Atomics.compareExchange(this.i32, this.index(hart, HSM_STATE), from, to) === from;
  }

  /** Records where the hart starts (or resumes) and its a1 (64-bit values as halves). */
  setStart(hart: number, addrLo: number, addrHi: number, opaqueLo: number, opaqueHi: number): void {
    const a = this.index(hart, START_ADDR);
    const o = this.index(hart, START_OPAQUE);
    Atomics.store(this.i32, a, addrLo | 0);
    Atomics.store(this.i32, a + 1, addrHi | 0);
    Atomics.store(this.i32, o, opaqueLo | 0);
    Atomics.store(this.i32, o + 1, opaqueHi | 0);
  }

  /** [addrLo, addrHi, opaqueLo, opaqueHi] as recorded by setStart. */
  start(hart: number): [number, number, number, number] {
    const a = this.index(hart, START_ADDR);
    const o = this.index(hart, START_OPAQUE);
    return [Atomics.load(this.i32, a), Atomics.load(this.i32, a + 1), Atomics.load(this.i32, o), Atomics.load(this.i32, o + 1)];
  }

  setNonRetentive(hart: number, on: boolean): void {
    Atomics.store(this.i32, this.index(hart, SUSPEND_NONRETENTIVE), on ? 1 : 0);
  }

  nonRetentive(hart: number): boolean {
    return Atomics.load(this.i32, this.index(hart, SUSPEND_NONRETENTIVE)) !== 0;
  }

  /** The current value of the hart's wake word (read it before checking whether to sleep). */
  wakeSeq(hart: number): number {
    return Atomics.load(this.i32, this.index(hart, WAKE));
  }

  /** Sleeps until woken or `timeoutMs` passes, unless a wake came after `seq` was read. Worker threads only. */
  sleep(hart: number, seq: number, timeoutMs: number): void {
    Atomics.wait(this.i32, this.index(hart, WAKE), seq, timeoutMs);
  }

  /** Wakes the hart's vCPU thread if it sleeps (and makes a sleep about to start return at once). */
  wake(hart: number): void {
    const index = this.index(hart, WAKE);
    Atomics.add(this.i32, index, 1);
    Atomics.notify(this.i32, index);
  }

  /**
   * Sets `bits` in the hart's mip word and, if that changed it, asks the
   * hart's engine to look at them and wakes it (bits already set need nothing).
   */
  raiseInterrupt(hart: number, bits: number): void {
    const stateWord = hartStateBase(hart) >> 2;
    const old = Atomics.or(this.i32, stateWord + (HS.MIP >> 2), bits);
    if ((old & bits) === bits) return;
    Atomics.store(this.i32, stateWord + (HS.EXIT_REQUEST >> 2), 1);
    this.wake(hart);
  }

  /** Clears `bits` in the hart's mip word. */
  lowerInterrupt(hart: number, bits: number): void {
    Atomics.and(this.i32, (hartStateBase(hart) + HS.MIP) >> 2, ~bits);
  }

  /** A PLIC context's output (plic.ts PlicOutput): the hart's MEIP for its M-mode context, SEIP for its S-mode one. */
  externalInterrupt(hart: number, mode: 'M' | 'S', level: boolean): void {
    const bit = mode === 'M' ? MIP_MEIP : MIP_SEIP;
    if (level) this.raiseInterrupt(hart, bit);
    else this.lowerInterrupt(hart, bit);
  }

  /** Asks the hart's engine to return to its vCPU loop at the next block boundary, and wakes it. */
  kick(hart: number): void {
    Atomics.store(this.i32, (hartStateBase(hart) + HS.EXIT_REQUEST) >> 2, 1);
    this.wake(hart);
  }
}
