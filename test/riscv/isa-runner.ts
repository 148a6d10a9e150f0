/**
 * Test helper: runs one ISA test program (fixtures/riscv-isa/*.S, conventions
 * in harness.h) on a TestCpu with a chosen engine and explains a failure: the
 * failing case number, or the unexpected trap's cause, pc (disassembled) and
 * tval.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { EngineName } from '../../src/emulator/riscv/engine.js';
import { TestCpu } from '../../src/emulator/riscv/harness/cpu.js';
import { decode, disassemble } from '../../src/emulator/riscv/isa/index.js';
import { scratchDir } from '../helpers/peers.js';
import { assembleFile, ISA_FIXTURES } from './toolchain.js';

export const MAX_INSNS = 5_000_000;

/** The engines the ISA and differential tests run on. */
export const TEST_ENGINES: readonly EngineName[] = ['interp', 'jit'];

function describePc(cpu: TestCpu, pc: bigint): string {
  const gpa = Number(pc);
  try {
    const bytes = cpu.readMemory(gpa, 4);
    const word = bytes[0]! | (bytes[1]! << 8) | (bytes[2]! << 16) | (bytes[3]! << 24);
    return `0x${pc.toString(16)} (${disassemble(decode(word), pc)})`;
  } catch {
    return `0x${pc.toString(16)}`;
  }
}

/** Runs fixtures/riscv-isa/<name>.S; throws with an explanation unless it passes. */
export async function runIsaTest(name: string, engine: EngineName): Promise<TestCpu> {
  const { dir, cleanup } = await scratchDir();
  try {
    const asm = await assembleFile(dir, path.join(ISA_FIXTURES, `${name}.S`));
    const cpu = new TestCpu({ engine });
    cpu.loadElf(new Uint8Array(await readFile(asm.elf)));
    const exit = asm.symbols.get('exit');
    if (exit === undefined) throw new Error(`${name}.S has no exit label (include harness.h)`);
    const r = cpu.run({ until: exit, maxInsns: MAX_INSNS });
    if (r.reason !== 'until') throw new Error(`${name}: did not reach exit within ${MAX_INSNS} instructions; pc ${describePc(cpu, cpu.pc)}`);
    const a0 = BigInt.asIntN(64, cpu.getX(10));
    if (a0 === -1n) {
      throw new Error(
        `${name} [${engine}]: unexpected trap, mcause ${cpu.getX(11)} at ${describePc(cpu, cpu.getX(12))}, mtval 0x${cpu.getX(13).toString(16)}, case ${cpu.getX(3)}`,
      );
    }
    if (a0 !== 0n) throw new Error(`${name} [${engine}]: case ${a0} failed`);
    return cpu;
  } finally {
    await cleanup();
  }
}
