/**
 * ISA tests: the assembly programs in fixtures/riscv-isa, one per instruction
 * group, assembled with Debian's cross toolchain and run on every engine.
 * Each program checks its own results (harness.h).
 */
import { test } from 'node:test';
import { readdirSync } from 'node:fs';
import { ISA_FIXTURES } from './toolchain.js';
import { runIsaTest, TEST_ENGINES } from './isa-runner.js';

const PROGRAMS = readdirSync(ISA_FIXTURES)
  .filter((f) => f.endsWith('.S'))
  .map((f) => f.slice(0, -2))
  .sort();

for (const engine of TEST_ENGINES) {
  for (const name of PROGRAMS) {
    test(`${name} on ${engine}`, async () => {
      await runIsaTest(name, engine);
    });
  }
}
