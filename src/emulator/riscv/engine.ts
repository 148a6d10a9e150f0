/**
 * The execution-engine interface every RISC-V engine implements (the
 * interpreter in interp/, the JIT in jit/), so the vCPU loop and the test
 * harness can drive either one and hand a hart from one to the other at any
 * block boundary: all architectural state lives in the shared memory
 * (layout.ts), never inside an engine.
 */

export interface Engine {
  /**
   * Runs up to about `budget` instructions (engines stop at the first block
   * boundary after the budget is spent) and returns how many retired.
   * Returns early when EXIT_REQUEST is set (after clearing it and letting the
   * hart take a pending interrupt) and after a wfi. A trap does not stop the
   * run: the hart has moved PC to the handler and execution continues there.
   * Never throws on guest input.
   */
  run(budget: number): number;
  /** Counters for tuning (TSEMU_JIT_STATS=1 prints them when a vCPU ends), or undefined. */
  stats?(): Record<string, number | string | undefined>;
}

/** The engines `--accel tcg,engine=…` and the test harness can choose. */
export type EngineName = 'interp' | 'jit';
