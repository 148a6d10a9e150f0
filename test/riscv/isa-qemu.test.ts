/**
 * The ISA test programs on the peer: each fixtures/riscv-isa program, built
 * with -DISA_ON_QEMU (harness.h reports through the virt test device), runs
 * on qemu-system-riscv64 -M virt -bios none and must pass there too. This
 * proves the programs' expectations against QEMU's RISC-V model, so a pass on
 * tsemu means agreement with QEMU, not with our own reading of the spec.
 *
 * Counter exactness is tsemu's own promise: QEMU counts instret only with
 * -icount, which these runs use (shift=0, one instruction per ns).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { requirePeer, scratchDir } from '../helpers/peers.js';
import { assembleFile, ISA_FIXTURES } from './toolchain.js';

const QEMU = 'qemu-system-riscv64';
/** A deadline for QEMU to exit on its own (a hung program never would). */
const EXIT_DEADLINE_MS = 120_000;

const PROGRAMS = readdirSync(ISA_FIXTURES)
  .filter((f) => f.endsWith('.S'))
  .map((f) => f.slice(0, -2))
  .sort();

function runQemu(elf: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(QEMU, [
      '-M', 'virt', '-bios', 'none', '-nographic', '-monitor', 'none', '-serial', 'none',
      '-cpu', 'rv64,zba=true,zbb=true,zbs=true', '-icount', 'shift=0', '-kernel', elf,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_DEADLINE_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

for (const name of PROGRAMS) {
  test(`${name} passes on ${QEMU}`, async () => {
    requirePeer(QEMU);
    const { dir, cleanup } = await scratchDir();
    try {
      const asm = await assembleFile(dir, path.join(ISA_FIXTURES, `${name}.S`), undefined, ['ISA_ON_QEMU']);
      const r = await runQemu(asm.elf);
      const what = r.code === 0xff ? 'an unexpected trap' : r.code === null ? 'no exit before the deadline' : `case ${r.code}`;
      assert.equal(r.code, 0, `${name} on QEMU: ${what}\n${r.output}`);
    } finally {
      await cleanup();
    }
  });
}
