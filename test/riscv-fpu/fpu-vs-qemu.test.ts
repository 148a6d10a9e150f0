/**
 * Differential test of the FPU executor against real RISC-V hardware
 * semantics: a static riscv64 program (fp-oracle.c, built with Debian's
 * riscv64-linux-gnu-gcc) runs every F/D instruction under qemu-riscv64-static
 * on the same operands and rounding modes; results and fflags must match bit
 * for bit. Half the cases give the rounding mode statically, half through
 * frm (rm = 7). FPU_TEST_SEED and FPU_TEST_CASES (per instruction) override
 * the defaults for a longer hunt.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { executeFp, FP_CLEAN, FP_DIRTY, FP_ILLEGAL } from '../../src/emulator/riscv/fpu/execute.js';
import { OP, OPCODE_NAMES, SPECS } from '../../src/emulator/riscv/isa/table.js';
import { HS, hartStateBase } from '../../src/emulator/riscv/layout.js';
import { mustRun, requirePeer, ROOT, runProgram, scratchDir } from '../helpers/peers.js';
import { edgeCases, type FpCase, makeCases, Random } from './cases.js';

const FP_MNEMONICS = OPCODE_NAMES.filter((_, op) => SPECS[op]?.kind === 'fp');
const CASES_PER_OP = Number(process.env.FPU_TEST_CASES ?? 2500);
const SEED = Number(process.env.FPU_TEST_SEED ?? 0x5eed1234);

/** Instructions whose destination is an integer register. */
function writesX(mnemonic: string): boolean {
  return /^(feq|flt|fle|fclass)\./.test(mnemonic) || /^fcvt\.(w|wu|l|lu)\.[sd]$/.test(mnemonic) || /^fmv\.x\./.test(mnemonic);
}

function readsX(mnemonic: string): boolean {
  return /^fcvt\.[sd]\.(w|wu|l|lu)$/.test(mnemonic) || /^fmv\.[wd]\.x$/.test(mnemonic);
}

function hex64(lo: number, hi: number): string {
  return (hi >>> 0).toString(16).padStart(8, '0') + (lo >>> 0).toString(16).padStart(8, '0');
}

async function buildOracle(dir: string): Promise<string> {
  requirePeer('riscv64-linux-gnu-gcc');
  const out = path.join(dir, 'fp-oracle');
  await mustRun(runProgram('riscv64-linux-gnu-gcc', ['-O1', '-static', '-o', out, path.join(ROOT, 'test/riscv-fpu/fp-oracle.c')]), 'riscv64-linux-gnu-gcc');
  return out;
}

const STATE = hartStateBase(0);
const memory = new Int32Array((STATE + 0x1000) >> 2);
const F = (STATE + HS.F) >> 2;
const X = (STATE + HS.X) >> 2;
const RS1 = 1;
const RS2 = 2;
const RS3 = 3;
const RD = 4;

/** Runs one case on the executor; returns "RESULT FLAGS" as the oracle prints it. */
function runCase(c: FpCase, staticRm: boolean): string {
  const xIn = readsX(c.mnemonic);
  const xOut = writesX(c.mnemonic);
  memory.fill(0x5a5a5a5a, F, F + 64);
  memory.fill(0x5a5a5a5a, X, X + 64);
  for (let k = 0; k < 3; k++) {
    memory[(xIn ? X : F) + 2 * (RS1 + k)] = c.ops[2 * k]!;
    memory[(xIn ? X : F) + 2 * (RS1 + k) + 1] = c.ops[2 * k + 1]!;
  }
  memory[(STATE + HS.FFLAGS) >> 2] = 0;
  memory[(STATE + HS.FRM) >> 2] = staticRm ? 5 : c.rm; // a reserved frm must not matter with a static rm
  const before = memory.slice(X, F + 64); // x0..x31 then f0..f31 (F = X + 64)
  const status = executeFp(memory, STATE, OP[c.mnemonic as keyof typeof OP], RD, RS1, RS2, RS3, staticRm ? c.rm : 7);
  if (status === FP_ILLEGAL) return 'illegal';
  const dest = (xOut ? X : F) + 2 * RD;
  const flags = memory[(STATE + HS.FFLAGS) >> 2]!;
  assert.equal(status, !xOut || flags !== 0 ? FP_DIRTY : FP_CLEAN, `${c.mnemonic}: status ${status}`);
  for (let i = X; i < F + 64; i++) {
    if (i !== dest && i !== dest + 1) assert.equal(memory[i], before[i - X], `${c.mnemonic} wrote outside its destination`);
  }
  return `${hex64(memory[dest]!, memory[dest + 1]!)} ${flags.toString(16)}`;
}

test('every F/D instruction matches qemu-riscv64 bit for bit (results and fflags)', async () => {
  requirePeer('qemu-riscv64-static');
  const { dir, cleanup } = await scratchDir();
  try {
    const oracle = await buildOracle(dir);
    const random = new Random(SEED);
    const cases = [...edgeCases(), ...FP_MNEMONICS.flatMap((m) => makeCases(m, CASES_PER_OP, random))];
    const input = cases.map((c) => `${c.mnemonic} ${c.rm} ${hex64(c.ops[0]!, c.ops[1]!)} ${hex64(c.ops[2]!, c.ops[3]!)} ${hex64(c.ops[4]!, c.ops[5]!)}`);
    const result = await mustRun(runProgram('qemu-riscv64-static', [oracle], { input: input.join('\n') + '\n' }), 'fp-oracle');
    const expected = result.stdout.trimEnd().split('\n');
    assert.equal(expected.length, cases.length, 'the oracle answered every case');
    const failures: string[] = [];
    const failuresByOp = new Map<string, number>();
    cases.forEach((c, i) => {
      const got = runCase(c, i % 2 === 0);
      if (got !== expected[i]) {
        failuresByOp.set(c.mnemonic, (failuresByOp.get(c.mnemonic) ?? 0) + 1);
        if (failures.length < 40) failures.push(`${input[i]} (${i % 2 === 0 ? 'static' : 'dynamic'} rm): qemu ${expected[i]}, tsemu ${got}`);
      }
    });
    assert.deepEqual(failures, [], `mismatches by instruction: ${JSON.stringify(Object.fromEntries(failuresByOp))}`);
  } finally {
    await cleanup();
  }
});
