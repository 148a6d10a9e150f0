/**
 * When V8 optimizes functions, for the short-lived commands (img, io: most finish
 * in well under a second). There V8 would spend more CPU compiling their async I/O
 * paths with its optimizing compiler (measured: about 200 ms of background
 * compiling in a 1 GiB convert) than the optimized code saves, so
 * delayOptimization() (called by bin/tsemu.js for those commands) makes a function
 * run 16 times longer than V8's default before it is optimized; long runs still
 * get optimized code.
 *
 * The budget is a V8 flag, and V8 accepts a code cache only under the flags it
 * was made with, Node's cache of its own built-in modules included: a built-in
 * loaded under a changed flag compiles from source (fs/promises 1.0 -> 5.5 ms of
 * CPU, crypto 1.9 -> 8 ms), and so do those a worker thread loads as it starts
 * (40 -> 80 ms per thread). So code about to start a worker thread holds V8's
 * default flags until the thread has loaded what it needs (holdDefaultFlags()),
 * and the bundle's stand-ins for Node built-ins loaded on first use
 * (scripts/lazy-builtins.js) load them under the default flags
 * (underDefaultFlags()); the longer budget comes back when the last holder lets go. V8 hashes only the
 * flags that differ from their defaults, so the default value restores the hash.
 * V8_DEFAULT_INTERRUPT_BUDGET is Node 20's V8's default; were it another, the
 * hold would set a third value: the cache would still be refused, as without it.
 */
import { createRequire } from 'node:module';

/** node:v8, loaded by the first flag change (the lazy built-ins' stand-ins call this module). */
let v8: typeof import('node:v8') | undefined;

/** V8's default --interrupt-budget (V8 11.3, Node 20), in bytes of bytecode run. */
const V8_DEFAULT_INTERRUPT_BUDGET = 66 * 1024;
const DELAYED_INTERRUPT_BUDGET = 16 * V8_DEFAULT_INTERRUPT_BUDGET;

let delayed = false;
let holders = 0;

function setInterruptBudget(bytes: number): void {
  v8 ??= createRequire(import.meta.url)('node:v8') as typeof import('node:v8');
  v8.setFlagsFromString(`--interrupt-budget=${bytes}`);
}

/** Functions of this process get optimized after 16 times V8's default run time. */
export function delayOptimization(): void {
  delayed = true;
  if (holders === 0) setInterruptBudget(DELAYED_INTERRUPT_BUDGET);
}

/**
 * Puts V8's default flags back until the returned function is called (once or
 * more): for a worker thread's start, whose built-in modules then load from Node's
 * code cache. Does nothing unless delayOptimization() was called.
 */
export function holdDefaultFlags(): () => void {
  if (!delayed) return () => {};
  if (holders++ === 0) setInterruptBudget(V8_DEFAULT_INTERRUPT_BUDGET);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--holders === 0) setInterruptBudget(DELAYED_INTERRUPT_BUDGET);
  };
}

/** Runs `load` (which loads Node built-in modules) under V8's default flags. */
export function underDefaultFlags<T>(load: () => T): T {
  const release = holdDefaultFlags();
  try {
    return load();
  } finally {
    release();
  }
}
