/**
 * The CLINT (SiFive's core-local interruptor, the ACLINT spec's MSWI + MTIMER
 * pair at one base): per-hart software interrupt (msip), per-hart timer
 * compare (mtimecmp) and the shared 10 MHz mtime.
 *
 * All state lives in the machine-shared area of the guest's WebAssembly.Memory
 * (layout.ts MACHINE_SHARED_BASE + 0x000..0xFFF, offsets below), so any
 * thread can hold a Clint over the same memory: a vCPU thread reads mtime for
 * the time CSR and its timer deadline without crossing to the main thread, and
 * can serve CLINT MMIO itself. Only reset() (machine start) initialises it.
 *
 *   +0x000  ORIGIN    f64  host tick count at which mtime was 0
 *   +0x100  MSIP      i32 per hart (bit 0)
 *   +0x200  MTIMECMP  two i32 per hart (low word, high word)
 *
 * mtime = hostTicks() - ORIGIN, where hostTicks() counts 100 ns ticks of the
 * host's monotonic clock (process.hrtime, one clock for all threads), so mtime
 * never goes backwards and all harts agree on it. A guest write to mtime moves
 * ORIGIN. Values are doubles: exact below 2^53 ticks (28 years).
 *
 * Interrupt bits go through an InterruptSink (vcpu/hart-control.ts's
 * HartControl is one): msip writes raise or lower MSIP; mtimecmp writes and
 * updateTimer() raise or lower the timer bit (MTIP for guests with their own
 * M-mode firmware; STIP when tsemu's SBI plays M-mode, see ClintOptions). A
 * pending timer is not raised by itself at its deadline: the hart's vCPU loop
 * calls updateTimer(), sleeping until timerDeadline() when idle; mtimecmp
 * writes wake the hart so that sleep is recomputed.
 *
 * Register map (offsets from the CLINT base): 0x0000 + 4*h msip, 0x4000 + 8*h
 * mtimecmp, 0xbff8 mtime. Accesses are 32-bit (64-bit ones arrive split, low
 * word first); a high-word mtime read right after a low-word one returns the
 * high word of the same instant, and a high-word write right after a low-word
 * one sets the 64-bit value written. Other widths and offsets read 0, write nothing.
 */
import type { AccessSize, MmioDevice } from '../bus/interfaces.js';
import { MACHINE_SHARED_BASE, MAX_HARTS, TIMEBASE_HZ } from '../riscv/layout.js';
import { MIP_MSIP, MIP_MTIP } from '../riscv/priv/csr-defs.js';

export const CLINT_SHARED = {
  ORIGIN: MACHINE_SHARED_BASE + 0x000,
  MSIP: MACHINE_SHARED_BASE + 0x100,
  MTIMECMP: MACHINE_SHARED_BASE + 0x200,
} as const;

export const CLINT_MSIP = 0x0000;
export const CLINT_MTIMECMP = 0x4000;
export const CLINT_MTIME = 0xbff8;

const TWO32 = 0x1_0000_0000;
const NS_PER_TICK = 1e9 / TIMEBASE_HZ;

/** Where the CLINT's interrupt bits go (HartControl implements it). */
export interface InterruptSink {
  /** Sets `bits` in the hart's mip and wakes it. */
  raiseInterrupt(hart: number, bits: number): void;
  lowerInterrupt(hart: number, bits: number): void;
  /** Wakes the hart's vCPU thread if it sleeps (its timer deadline changed). */
  wake(hart: number): void;
}

/** The host's monotonic clock in 100 ns ticks. */
function hostTicks(): number {
  const [seconds, nanoseconds] = process.hrtime();
  return seconds * TIMEBASE_HZ + Math.floor(nanoseconds / NS_PER_TICK);
}

export interface ClintOptions {
  memory: WebAssembly.Memory;
  harts: number;
  sink: InterruptSink;
  /** The mip bit an expired timer raises: MIP_MTIP (default), or MIP_STIP when tsemu's SBI plays M-mode. */
  timerBit?: number;
}

export class Clint implements MmioDevice {
  private readonly i32: Int32Array;
  private readonly f64: Float64Array;
  private readonly harts: number;
  private readonly sink: InterruptSink;
  private readonly timerBit: number;
  /** High word of the mtime value whose low word was just read, or -1. */
  private latchedHi = -1;
  /** Low word of mtime just written by the guest, or -1: a high-word write right after completes that value. */
  private writtenLo = -1;

  constructor(opts: ClintOptions) {
    const { harts } = opts;
    if (!Number.isInteger(harts) || harts < 1 || harts > MAX_HARTS) throw new RangeError(`CLINT harts must be 1..${MAX_HARTS}`);
    this.harts = harts;
    this.sink = opts.sink;
    this.timerBit = opts.timerBit ?? MIP_MTIP;
    this.i32 = new Int32Array(opts.memory.buffer);
    this.f64 = new Float64Array(opts.memory.buffer);
  }

  /** Machine start: mtime restarts at 0, no timer armed (mtimecmp all ones), no msip. */
  reset(): void {
    this.f64[CLINT_SHARED.ORIGIN >> 3] = hostTicks();
    for (let hart = 0; hart < this.harts; hart++) {
      Atomics.store(this.i32, (CLINT_SHARED.MSIP >> 2) + hart, 0);
      this.setTimecmp(hart, -1, -1);
    }
  }

  /** mtime in 10 MHz ticks. */
  readMtime(): number {
    return hostTicks() - this.f64[CLINT_SHARED.ORIGIN >> 3];
  }

  /** The hart's mtimecmp as a double (all ones, the "never" value, is about 1.8e19). */
  timerDeadline(hart: number): number {
    const at = (CLINT_SHARED.MTIMECMP >> 2) + 2 * hart;
    return (Atomics.load(this.i32, at + 1) >>> 0) * TWO32 + (Atomics.load(this.i32, at) >>> 0);
  }

  /** Sets the hart's mtimecmp (halves), e.g. for SBI set_timer; call updateTimer afterwards. */
  setTimecmp(hart: number, lo: number, hi: number): void {
    const at = (CLINT_SHARED.MTIMECMP >> 2) + 2 * hart;
    Atomics.store(this.i32, at, lo | 0);
    Atomics.store(this.i32, at + 1, hi | 0);
  }

  /**
   * Raises the timer bit in the hart's mip if its timer has expired, lowers it
   * if not; returns the ticks left until the deadline (0 when expired).
   */
  updateTimer(hart: number): number {
    const left = this.timerDeadline(hart) - this.readMtime();
    if (left <= 0) this.sink.raiseInterrupt(hart, this.timerBit);
    else this.sink.lowerInterrupt(hart, this.timerBit);
    return Math.max(0, left);
  }

  read(offset: number, size: AccessSize): number {
    if (size !== 4 || offset % 4 !== 0) return 0;
    if (offset === CLINT_MTIME) {
      const now = this.readMtime();
      this.latchedHi = Math.floor(now / TWO32);
      return now >>> 0;
    }
    if (offset === CLINT_MTIME + 4) {
      const hi = this.latchedHi >= 0 ? this.latchedHi : Math.floor(this.readMtime() / TWO32);
      this.latchedHi = -1;
      return hi >>> 0;
    }
    const hart = this.hartOf(offset, CLINT_MSIP, 4);
    if (hart >= 0) return Atomics.load(this.i32, (CLINT_SHARED.MSIP >> 2) + hart) >>> 0;
    const word = this.hartOf(offset, CLINT_MTIMECMP, 8);
    if (word >= 0) return Atomics.load(this.i32, (CLINT_SHARED.MTIMECMP >> 2) + 2 * word + ((offset >> 2) & 1)) >>> 0;
    return 0;
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (size !== 4 || offset % 4 !== 0) return;
    if (offset === CLINT_MTIME || offset === CLINT_MTIME + 4) {
      this.writeMtimeHalf(offset === CLINT_MTIME ? 0 : 1, value >>> 0);
      return;
    }
    const hart = this.hartOf(offset, CLINT_MSIP, 4);
    if (hart >= 0) {
      const on = (value & 1) === 1;
      Atomics.store(this.i32, (CLINT_SHARED.MSIP >> 2) + hart, on ? 1 : 0);
      if (on) this.sink.raiseInterrupt(hart, MIP_MSIP);
      else this.sink.lowerInterrupt(hart, MIP_MSIP);
      return;
    }
    const timerHart = this.hartOf(offset, CLINT_MTIMECMP, 8);
    if (timerHart >= 0) {
      Atomics.store(this.i32, (CLINT_SHARED.MTIMECMP >> 2) + 2 * timerHart + ((offset >> 2) & 1), value | 0);
      this.updateTimer(timerHart);
      this.sink.wake(timerHart);
    }
  }

  /** The hart whose register of `stride` bytes at `base` holds `offset`, or -1. */
  private hartOf(offset: number, base: number, stride: number): number {
    const hart = Math.floor((offset - base) / stride);
    return offset >= base && hart < this.harts ? hart : -1;
  }

  /**
   * A guest write of one half of mtime: the other half keeps its current value,
   * except that a high-word write right after a low-word one (a split 64-bit
   * store) pairs with the low word written.
   */
  private writeMtimeHalf(half: 0 | 1, value: number): void {
    const now = this.readMtime();
    const lo = half === 0 ? value : this.writtenLo >= 0 ? this.writtenLo : now >>> 0;
    const hi = half === 1 ? value : Math.floor(now / TWO32);
    this.writtenLo = half === 0 ? value : -1;
    this.f64[CLINT_SHARED.ORIGIN >> 3] = hostTicks() - (hi * TWO32 + lo);
    for (let hart = 0; hart < this.harts; hart++) {
      this.updateTimer(hart);
      this.sink.wake(hart);
    }
  }
}
