/**
 * The 'jit' engine: a dispatcher loop in JS over the code cache, with the
 * interpreter for cold code and for the instructions the translator leaves out.
 *
 * Theory of operation. run(budget) sets the budget word (translate.ts) and
 * loops at block boundaries: if EXIT_REQUEST is set it clears it, lets the hart
 * take a pending interrupt and returns; otherwise it translates PC to a host
 * offset through the fetch TLB (inline tag compare on the shared memory, the
 * hart's fetchHost on a miss — a fetch fault has already moved PC to the
 * handler), finds the block's cache entry (counting a cold one, which may get
 * it translated on the spot) and either enters its translated
 * function (which chains on through same-page successors inside WebAssembly
 * and returns when it leaves the page, jumps indirectly, traps, runs out of
 * budget or sees EXIT_REQUEST) or runs one block on the interpreter. A
 * translated block returns 1 when it stopped in front of an instruction it
 * wants the interpreter to run (FP disabled or an illegal FP encoding: the
 * interpreter raises the trap). After the interpreter retires a wfi that
 * starts a block, run() returns so the vCPU loop can sleep.
 *
 * Translated code only decrements the budget; the dispatcher adds what a
 * block run spent to INSTRET when it returns (the interpreter keeps INSTRET
 * itself). A CSR instruction in translated code calls csrAccess here with the
 * number of its block's instructions before it, which brings INSTRET up to
 * date first (`accounted` is the budget value INSTRET last caught up with), so
 * a CSR read of instret is exact in either engine.
 * The return value is the number of instructions retired (the budget spent by
 * blocks and interpreter steps). A fetch fault retires nothing but still costs
 * one unit of the loop's own allowance, so a guest looping on faults cannot
 * keep run() from returning.
 */
import { HS, TLB_ENTRY_SIZE, TLB_FETCH, tlbIndex } from '../layout.js';
import type { Engine } from '../engine.js';
import type { HartServices } from '../hart-api.js';
import { JIT_BUDGET } from './hub.js';
import { CodeCache, DEFAULT_TUNING, TRANSLATED, type JitTuning } from './code-cache.js';

/** Runs exactly one block (or one page-straddling instruction) on the interpreter; returns instructions retired. */
export interface BlockStepper {
  step(): number;
}

/**
 * The wfi encoding's two 16-bit halves. wfi is never translated, so once the
 * code before it is, a wfi starts a block of its own and the dispatcher sees
 * it at the block's host offset (a cold block that runs into one is missed:
 * the run just goes on to the end of its budget).
 */
const WFI_LO = 0x0073;
const WFI_HI = 0x1050;

export class JitEngine implements Engine {
  readonly cache: CodeCache;
  /** Dispatcher iterations so far (block entries from JS; chained entries inside wasm are not counted). */
  dispatches = 0;
  /** Blocks (or single instructions) run on the interpreter so far. */
  interpreted = 0;
  private readonly i32: Int32Array;
  private readonly u16: Uint16Array;
  private readonly pcWord: number;
  private readonly exitWord: number;
  private readonly instretWord: number;
  private readonly budgetWord: number;
  private readonly tlbSetWord: number;

  /** The budget word's value when INSTRET last caught up with it. */
  private accounted = 0;

  constructor(private readonly hart: HartServices, private readonly interp: BlockStepper, tuning: JitTuning = DEFAULT_TUNING) {
    this.cache = new CodeCache(hart, (csr, kind, writes, insn, retired) => this.csrAccess(csr, kind, writes, insn, retired), tuning);
    this.i32 = new Int32Array(hart.memory.buffer);
    this.u16 = new Uint16Array(hart.memory.buffer);
    this.pcWord = (hart.stateBase + HS.PC) >> 2;
    this.exitWord = (hart.stateBase + HS.EXIT_REQUEST) >> 2;
    this.instretWord = (hart.stateBase + HS.INSTRET) >> 2;
    this.budgetWord = (hart.stateBase + JIT_BUDGET) >> 2;
    this.tlbSetWord = (hart.stateBase + HS.TLB_SET) >> 2;
  }

  run(budget: number): number {
    const cache = this.cache;
    const mem = this.i32;
    const left = this.budgetWord;
    mem[left] = budget;
    let allowance = budget;
    while (mem[left]! > 0 && allowance-- > 0) {
      if (Atomics.load(mem, this.exitWord) !== 0) {
        Atomics.store(mem, this.exitWord, 0);
        this.hart.checkInterrupts();
        break;
      }
      this.dispatches++;
      cache.receive();
      const host = this.fetchHost();
      if (host < 0) continue;
      cache.checkPage(host);
      const e = cache.entry(host);
      if (e.state !== TRANSLATED) cache.noteCold(e);
      if (e.state === TRANSLATED) {
        cache.noteEntered(e);
        this.accounted = mem[left]!;
        const status = cache.enter(e.slot, host);
        this.addInstret(this.accounted - mem[left]!);
        if (status === 0) continue;
      }
      const wfi = e.state !== TRANSLATED && this.u16[host >>> 1] === WFI_LO && this.u16[(host >>> 1) + 1] === WFI_HI;
      this.interpreted++;
      const retired = this.interp.step();
      mem[left] = mem[left]! - retired;
      if (wfi && retired > 0) break;
    }
    return budget - mem[left]!;
  }

  stats(): Record<string, number | string | undefined> {
    return { dispatches: this.dispatches, interpreted: this.interpreted, ...this.cache.stats };
  }

  /** Translated code's CSR access (CodeCache's CsrHelper): INSTRET catches up, then the hart does the access. */
  private csrAccess(csr: number, kind: number, writes: number, insn: number, retired: number): number {
    const budget = this.i32[this.budgetWord]! - retired;
    this.addInstret(this.accounted - budget);
    this.accounted = budget;
    return this.hart.csrAccess(csr, kind as 0 | 1 | 2, writes !== 0, insn) ? 1 : 0;
  }

  /** INSTRET += n (translated code counts only the budget). */
  private addInstret(n: number): void {
    const mem = this.i32;
    const lo = (mem[this.instretWord]! >>> 0) + n;
    mem[this.instretWord] = lo | 0;
    if (lo > 0xffffffff) mem[this.instretWord + 1] = (mem[this.instretWord + 1]! + 1) | 0;
  }

  /** Host offset of the instruction at PC, or -1 when the fetch trapped. */
  private fetchHost(): number {
    const mem = this.i32;
    const lo = mem[this.pcWord]!;
    const hi = mem[this.pcWord + 1]!;
    const vpnLo = (lo >>> 12) | (hi << 20);
    const vpnHi = hi >>> 12;
    const w = (mem[this.tlbSetWord]! + TLB_FETCH + tlbIndex(lo) * TLB_ENTRY_SIZE) >> 2;
    if (mem[w] === vpnLo && mem[w + 1] === vpnHi) return (lo + mem[w + 2]!) >>> 0;
    return this.hart.fetchHost(lo, hi);
  }
}
