/**
 * The platform-level interrupt controller (PLIC), as the RISC-V PLIC
 * specification and SiFive's plic-1.0.0 lay it out.
 *
 * Sources 1..ndev each have a priority (0 = never interrupts, up to
 * maxPriority) and a pending bit; source 0 means "no interrupt". Targets are
 * contexts, two per hart: 2h is hart h's M mode, 2h+1 its S mode. Each context
 * has an enable bit per source, a priority threshold and a claim/complete
 * register. A context's output is high while some source is pending, enabled
 * for it and above its threshold; the machine turns that into the hart's
 * MEIP/SEIP through the output callback, called only on changes.
 *
 * Gateways are level-triggered: while a source is not claimed its pending bit
 * follows its wire. A claim (reading claim/complete) returns the pending
 * enabled source with the highest priority above the threshold, ties going to
 * the lowest id, clears its pending bit and holds the source until the
 * context writes that id back (completion; ignored unless the source is
 * enabled for that context). Then the wire's level sets pending again.
 *
 * Register map (offsets): 4*s priority of source s; 0x1000 pending bits
 * (read-only); 0x2000 + 0x80*c enable bits of context c; 0x200000 + 0x1000*c
 * threshold of context c and, at +4, its claim/complete. Registers are 32-bit:
 * other access widths read 0 and write nothing, as do unused offsets.
 *
 * Shared state: every word of the PLIC's state (priorities, wire levels,
 * claimed and pending bits, enables, thresholds, output levels) lives in one
 * Int32Array, either its own or a range of the machine's shared memory
 * (PlicOptions.state), so Plic objects on several threads over the same
 * range are one PLIC: the main thread's devices drive their wires through
 * one, and each vCPU thread serves its hart's claims and completions through
 * another, without a round trip to the main thread. Every operation holds the
 * LOCK word (a futex-style lock: 0 free, 1 held, 2 held with waiters, who
 * sleep in Atomics.wait) from its first read to its output calls, so the
 * outputs change in the order the operations took the lock and an output
 * always follows the last state. State in fresh memory is all zeros: no
 * source enabled or pending, priorities and thresholds 0.
 */
import type { AccessSize, IrqLine, MmioDevice } from '../bus/interfaces.js';

export const PLIC_PENDING_BASE = 0x1000;
export const PLIC_ENABLE_BASE = 0x2000;
export const PLIC_ENABLE_STRIDE = 0x80;
export const PLIC_CONTEXT_BASE = 0x20_0000;
export const PLIC_CONTEXT_STRIDE = 0x1000;

export type PlicOutput = (hart: number, mode: 'M' | 'S', level: boolean) => void;

export interface PlicOptions {
  harts: number;
  /** Number of sources (riscv,ndev): valid ids are 1..ndev. */
  ndev: number;
  maxPriority: number;
  output: PlicOutput;
  /** Where the state lives in shared memory (plicStateBytes long, 4-byte aligned); absent: a buffer of its own. */
  state?: { memory: WebAssembly.Memory; base: number };
}

/** Bytes of state a PLIC of `harts` harts and `ndev` sources keeps. */
export function plicStateBytes(harts: number, ndev: number): number {
  return 4 * stateLayout(harts, ndev).totalWords;
}

/** Word offsets of the state's parts. */
function stateLayout(harts: number, ndev: number) {
  const sources = ndev + 1;
  const words = Math.ceil(sources / 32);
  const contexts = 2 * harts;
  const priority = 1;
  const level = priority + sources;
  const claimed = level + sources;
  const pending = claimed + sources;
  const enable = pending + words;
  const threshold = enable + contexts * words;
  const outLevel = threshold + contexts;
  return { totalWords: outLevel + contexts, bitWords: words, contexts, priority, level, claimed, pending, enable, threshold, outLevel };
}

const LOCK = 0;
const FREE = 0;
const HELD = 1;
const CONTENDED = 2;

export class Plic implements MmioDevice {
  private readonly ndev: number;
  private readonly maxPriority: number;
  private readonly output: PlicOutput;
  private readonly m: Int32Array;
  private readonly at: ReturnType<typeof stateLayout>;

  constructor(opts: PlicOptions) {
    if (!Number.isInteger(opts.ndev) || opts.ndev < 1 || opts.ndev > 1023) throw new RangeError(`PLIC ndev ${opts.ndev} is not 1..1023`);
    this.ndev = opts.ndev;
    this.maxPriority = opts.maxPriority;
    this.output = opts.output;
    this.at = stateLayout(opts.harts, opts.ndev);
    this.m = opts.state
      ? new Int32Array(opts.state.memory.buffer, opts.state.base, this.at.totalWords)
      : new Int32Array(new SharedArrayBuffer(4 * this.at.totalWords));
  }

  /** The wire of source `source` (1..ndev), for a device to drive. */
  irqLine(source: number): IrqLine {
    if (!Number.isInteger(source) || source < 1 || source > this.ndev) throw new RangeError(`PLIC source ${source} is not 1..${this.ndev}`);
    return { set: (level) => this.setLevel(source, level) };
  }

  read(offset: number, size: AccessSize): number {
    if (size !== 4 || offset % 4 !== 0) return 0;
    this.lock();
    try {
      return this.readRegister(offset) >>> 0;
    } finally {
      this.unlock();
    }
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (size !== 4 || offset % 4 !== 0) return;
    this.lock();
    try {
      this.writeRegister(offset, value >>> 0);
      this.update();
    } finally {
      this.unlock();
    }
  }

  private lock(): void {
    const m = this.m;
    let seen = Atomics.compareExchange(m, LOCK, FREE, HELD);
    if (seen === FREE) return;
    if (seen !== CONTENDED) seen = Atomics.exchange(m, LOCK, CONTENDED);
    while (seen !== FREE) {
      Atomics.wait(m, LOCK, CONTENDED);
      seen = Atomics.exchange(m, LOCK, CONTENDED);
    }
  }

  private unlock(): void {
    if (Atomics.exchange(this.m, LOCK, FREE) === CONTENDED) Atomics.notify(this.m, LOCK, 1);
  }

  private readRegister(offset: number): number {
    const { m, at } = this;
    if (offset < PLIC_PENDING_BASE) {
      const source = offset >> 2;
      return source <= this.ndev ? m[at.priority + source]! : 0;
    }
    if (offset < PLIC_PENDING_BASE + 4 * this.at.bitWords) return m[at.pending + ((offset - PLIC_PENDING_BASE) >> 2)]!;
    const enableWord = this.enableWord(offset);
    if (enableWord >= 0) return m[at.enable + enableWord]!;
    const ctx = this.contextOf(offset);
    if (ctx < 0) return 0;
    return (offset & (PLIC_CONTEXT_STRIDE - 1)) === 0 ? m[at.threshold + ctx]! : this.claim(ctx);
  }

  private writeRegister(offset: number, value: number): void {
    const { m, at } = this;
    if (offset < PLIC_PENDING_BASE) {
      const source = offset >> 2;
      if (source >= 1 && source <= this.ndev) m[at.priority + source] = Math.min(value, this.maxPriority);
      return;
    }
    const enableWord = this.enableWord(offset);
    if (enableWord >= 0) {
      m[at.enable + enableWord] = value & this.validMask(enableWord % this.at.bitWords);
      return;
    }
    const ctx = this.contextOf(offset);
    if (ctx < 0) return;
    if ((offset & (PLIC_CONTEXT_STRIDE - 1)) === 0) m[at.threshold + ctx] = Math.min(value, this.maxPriority);
    else this.complete(ctx, value);
  }

  /** Bits of enable/pending word `word` that name real sources (never source 0). */
  private validMask(word: number): number {
    let mask = 0xffff_ffff;
    if (word === 0) mask &= ~1;
    const lastBit = this.ndev - word * 32; // highest valid bit index in this word
    if (lastBit < 31) mask &= (2 ** (lastBit + 1) - 1) >>> 0;
    return mask >>> 0;
  }

  /** Index into the enable words for an offset in the enable area, or -1. */
  private enableWord(offset: number): number {
    if (offset < PLIC_ENABLE_BASE || offset >= PLIC_CONTEXT_BASE) return -1;
    const ctx = Math.floor((offset - PLIC_ENABLE_BASE) / PLIC_ENABLE_STRIDE);
    const word = ((offset - PLIC_ENABLE_BASE) % PLIC_ENABLE_STRIDE) >> 2;
    return ctx < this.at.contexts && word < this.at.bitWords ? ctx * this.at.bitWords + word : -1;
  }

  /** The context whose threshold (+0) or claim (+4) register `offset` is, or -1. */
  private contextOf(offset: number): number {
    if (offset < PLIC_CONTEXT_BASE) return -1;
    const ctx = Math.floor((offset - PLIC_CONTEXT_BASE) / PLIC_CONTEXT_STRIDE);
    return ctx < this.at.contexts && (offset & (PLIC_CONTEXT_STRIDE - 1)) <= 4 ? ctx : -1;
  }

  private setLevel(source: number, level: boolean): void {
    const { m, at } = this;
    this.lock();
    try {
      m[at.level + source] = level ? 1 : 0;
      if (!m[at.claimed + source]) this.setPending(source, level);
      this.update();
    } finally {
      this.unlock();
    }
  }

  private setPending(source: number, on: boolean): void {
    const bit = 1 << (source & 31);
    const word = this.at.pending + (source >> 5);
    if (on) this.m[word] |= bit;
    else this.m[word] &= ~bit;
  }

  /** The source a claim by `ctx` would return now (0: none). */
  private best(ctx: number): number {
    const { m, at } = this;
    let best = 0;
    let bestPriority = m[at.threshold + ctx]!;
    for (let w = 0; w < this.at.bitWords; w++) {
      let bits = m[at.pending + w]! & m[at.enable + ctx * this.at.bitWords + w]!;
      while (bits !== 0) {
        const bit = 31 - Math.clz32(bits & -bits);
        bits &= bits - 1;
        const source = w * 32 + bit;
        if (m[at.priority + source]! > bestPriority) {
          best = source;
          bestPriority = m[at.priority + source]!;
        }
      }
    }
    return best;
  }

  private claim(ctx: number): number {
    const source = this.best(ctx);
    if (source !== 0) {
      this.setPending(source, false);
      this.m[this.at.claimed + source] = 1;
      this.update();
    }
    return source;
  }

  private complete(ctx: number, source: number): void {
    const { m, at } = this;
    if (source < 1 || source > this.ndev) return;
    if (!(m[at.enable + ctx * this.at.bitWords + (source >> 5)]! & (1 << (source & 31)))) return;
    m[at.claimed + source] = 0;
    this.setPending(source, m[at.level + source] !== 0);
  }

  private update(): void {
    const { m, at } = this;
    for (let ctx = 0; ctx < this.at.contexts; ctx++) {
      const level = this.best(ctx) !== 0 ? 1 : 0;
      if (level !== m[at.outLevel + ctx]) {
        m[at.outLevel + ctx] = level;
        this.output(ctx >> 1, ctx & 1 ? 'S' : 'M', level === 1);
      }
    }
  }
}
