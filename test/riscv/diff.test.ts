/**
 * Differential tests: random instruction sequences from the table run on two
 * engines from the same state must leave identical x/f registers, pc, fcsr,
 * instret and memory. 'interp' against itself checks the driver and the
 * interpreter's determinism; each new engine adds a pair here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EngineName } from '../../src/emulator/riscv/engine.js';
import { differentialRun } from '../../src/emulator/riscv/harness/diff.js';
import { Random } from '../../src/emulator/riscv/harness/random.js';
import { decode, encode, OPCODE_NAMES, SPECS } from '../../src/emulator/riscv/isa/index.js';

const PAIRS: readonly (readonly [EngineName, EngineName])[] = [['interp', 'interp']];
const PROGRAMS = 200;
const LENGTH = 48;

for (const engines of PAIRS) {
  test(`${engines[0]} and ${engines[1]} agree on ${PROGRAMS} random programs of ${LENGTH} instructions (integer, memory, atomics, FP)`, () => {
    for (let seed = 1; seed <= PROGRAMS; seed++) {
      const report = differentialRun({ seed, length: LENGTH, engines, fp: seed % 2 === 0 });
      if (report) {
        assert.fail(`seed ${seed}: engines differ\n${report.differences.join('\n')}\nshortest failing program:\n${report.program.join('\n')}`);
      }
    }
  });
}

test('encode is the inverse of decode for random fields of every instruction', () => {
  const rnd = new Random(99);
  for (let op = 1; op < OPCODE_NAMES.length; op++) {
    for (let i = 0; i < 50; i++) {
      const w = encode(op, { rd: rnd.int(0, 31), rs1: rnd.int(0, 31), rs2: rnd.int(0, 31), rs3: rnd.int(0, 31), imm: rnd.u32() | 0, rm: rnd.pick([0, 1, 2, 3, 4, 7]) });
      const d = decode(w);
      assert.equal(OPCODE_NAMES[d.op], OPCODE_NAMES[op], `0x${w.toString(16)}`);
      assert.equal(encode(d.op, d), w, `${OPCODE_NAMES[op]} 0x${w.toString(16)} re-encodes`);
      assert.equal(SPECS[op]!.match, (w & SPECS[op]!.mask) >>> 0);
    }
  }
});
