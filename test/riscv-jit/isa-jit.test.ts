/**
 * H1's ISA test programs (fixtures/riscv-isa) on the 'jit' engine, with a
 * hotness threshold of 1 so the translated code — not the interpreter
 * fallback — runs nearly every block.
 */
import { test } from 'node:test';
import { readdirSync } from 'node:fs';
import { ENGINES } from '../../src/emulator/riscv/harness/cpu.js';
import { createJitEngine } from '../../src/emulator/riscv/jit/index.js';
import { DEFAULT_TUNING } from '../../src/emulator/riscv/jit/code-cache.js';
import { ISA_FIXTURES } from '../riscv/toolchain.js';
import { runIsaTest } from '../riscv/isa-runner.js';

ENGINES.jit ??= (hart) => createJitEngine(hart, { ...DEFAULT_TUNING, hotThreshold: 1, flushAfter: 1 });

const PROGRAMS = readdirSync(ISA_FIXTURES).filter((f) => f.endsWith('.S')).map((f) => f.slice(0, -2)).sort();

for (const name of PROGRAMS) {
  test(`${name} on jit`, async () => {
    await runIsaTest(name, 'jit');
  });
}
