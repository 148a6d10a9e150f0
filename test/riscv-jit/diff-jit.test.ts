/**
 * H1's differential driver on the JIT: random programs run on the interpreter
 * and on the JIT from the same state must agree on every register, pc, fcsr,
 * instret and memory. The harness's 'jit' translates every block the first
 * time it is reached, so the translated code — not the interpreter fallback —
 * runs the programs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { differentialRun } from '../../src/emulator/riscv/harness/diff.js';

const PROGRAMS = 300;
const LENGTH = 48;

test(`interp and jit agree on ${PROGRAMS} random programs of ${LENGTH} instructions (integer, memory, atomics, FP)`, () => {
  for (let seed = 1; seed <= PROGRAMS; seed++) {
    const report = differentialRun({ seed, length: LENGTH, engines: ['interp', 'jit'], fp: seed % 2 === 0 });
    if (report) {
      assert.fail(`seed ${seed}: engines differ\n${report.differences.join('\n')}\nshortest failing program:\n${report.program.join('\n')}`);
    }
  }
});
