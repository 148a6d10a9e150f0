/**
 * The privileged architecture end to end: e2e.S (assembled with Debian's
 * cross toolchain, harness.h conventions) runs through the real Hart on the
 * interpreter and on the JIT (hotness threshold 1, so translated code runs)
 * and checks itself.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import type { EngineName } from '../../src/emulator/riscv/engine.js';
import { ENGINES, TestCpu } from '../../src/emulator/riscv/harness/cpu.js';
import { DEFAULT_TUNING } from '../../src/emulator/riscv/jit/code-cache.js';
import { createJitEngine } from '../../src/emulator/riscv/jit/index.js';
import { scratchDir } from '../helpers/peers.js';
import { TEST_ENGINES } from '../riscv/isa-runner.js';
import { assembleFile } from '../riscv/toolchain.js';

const SOURCE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'e2e.S');

ENGINES.jit ??= (hart) => createJitEngine(hart, { ...DEFAULT_TUNING, hotThreshold: 1, flushAfter: 1 });
const engines = new Set<EngineName>([...TEST_ENGINES, 'jit']);

for (const engine of engines) {
  test(`traps, delegation, Sv39, interrupts, MPRV, atomics in a guest program on ${engine}`, async () => {
    const { dir, cleanup } = await scratchDir();
    try {
      const asm = await assembleFile(dir, SOURCE);
      const cpu = new TestCpu({ engine });
      cpu.loadElf(new Uint8Array(await readFile(asm.elf)));
      const run = cpu.run({ until: asm.symbols.get('exit')!, maxInsns: 100_000 });
      assert.equal(run.reason, 'until', `stuck at pc 0x${cpu.pc.toString(16)}`);
      const a0 = BigInt.asIntN(64, cpu.getX(10));
      const trap = `mcause ${cpu.getX(11)} mepc 0x${cpu.getX(12).toString(16)} mtval 0x${cpu.getX(13).toString(16)}`;
      assert.equal(a0, 0n, a0 === -1n ? `unexpected trap: ${trap} in case ${cpu.getX(3)}` : `case ${a0} failed`);
    } finally {
      await cleanup();
    }
  });
}
