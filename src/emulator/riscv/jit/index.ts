/**
 * The JIT's public surface: createJitEngine builds the 'jit' engine for a
 * hart — the interpreter as its fallback for cold and untranslated code, and
 * its code cache registered as the hart's CodeCacheHooks so stores to code
 * pages, fence.i and sfence.vma drop translations.
 */
import type { Hart } from '../hart.js';
import { Interpreter } from '../interp/interpreter.js';
import { DEFAULT_TUNING, type JitTuning } from './code-cache.js';
import { JitEngine } from './engine.js';

export { JitEngine } from './engine.js';
export { DEFAULT_TUNING, type JitTuning } from './code-cache.js';

export function createJitEngine(hart: Hart, tuning: JitTuning = DEFAULT_TUNING): JitEngine {
  const engine = new JitEngine(hart, new Interpreter(hart), tuning);
  hart.setCodeCacheHooks(engine.cache);
  return engine;
}
