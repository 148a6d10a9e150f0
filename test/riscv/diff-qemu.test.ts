/**
 * Differential tests against the peer: the random programs of the
 * differential driver run on tsemu's interpreter and on qemu-riscv64-static
 * (user mode), from the same registers and memory, and must agree on every x
 * and f register, fcsr and the RAM window. This makes QEMU, not our own
 * reading of the spec, the oracle for the integer, memory and atomic
 * instructions (and the FPU through them).
 *
 * The QEMU side is a static ELF laid out like the driver's programs (body at
 * 0x8000_0000, window at 0x8010_0000): a prologue at 0x8001_0000 loads the
 * start state, jumps to the body and its loop, and a dump routine writes x1..x31,
 * f0..f31, fcsr and the window to stdout. x27 (the loop counter, 0 after the
 * loop) is its base register.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  DIFF_LAYOUT, differentialRun, engineSide, loopTail, type DiffSide, type FinalState, type StartState,
} from '../../src/emulator/riscv/harness/diff.js';
import { requirePeer } from '../helpers/peers.js';
import { GCC, MARCH } from './toolchain.js';

const QEMU_USER = 'qemu-riscv64-static';
const PROGRAMS = 100;
const LENGTH = 48;
const DUMP_BYTES = 8 * 32 + 8 * 32 + 8;
/**
 * Left out where QEMU 7.2 and tsemu legitimately part: ctzw (QEMU counts into
 * the upper word when the low word is zero; the Zbb spec says 32), and sc.w /
 * sc.d, whose success after an LR of the other size or an intervening store
 * of the same value is implementation-defined (QEMU compares the LR's whole
 * value, tsemu the bytes the SC covers).
 */
const QEMU_DIFFERS = new Set(['ctzw', 'sc.w', 'sc.d']);

const LINKER_SCRIPT = `
OUTPUT_ARCH(riscv)
ENTRY(_start)
SECTIONS {
  . = 0x${DIFF_LAYOUT.codeBase.toString(16)};
  .text.body : { *(.text.body) }
  . = 0x${(DIFF_LAYOUT.codeBase + 0x1_0000).toString(16)};
  .text : { *(.text) }
  . = 0x${DIFF_LAYOUT.window.toString(16)};
  .data : { *(.data) }
  .bss : { *(.bss) }
}
`;

function quads(values: Iterable<bigint>): string {
  return [...values].map((v) => `  .quad 0x${BigInt.asUintN(64, v).toString(16)}`).join('\n');
}

function source(program: readonly number[], state: StartState): string {
  const L = DIFF_LAYOUT.loopReg;
  const xRegs = [...Array(32).keys()].filter((r) => r !== 0 && r !== L);
  const windowQuads = new BigUint64Array(state.window.buffer, state.window.byteOffset, state.window.byteLength / 8);
  return [
    '  .section .text.body, "ax"',
    'body:',
    ...[...program, ...loopTail(program.length)].map((w) => `  .word 0x${w.toString(16)}`),
    '  j dump',
    '  .text',
    '  .globl _start',
    '_start:',
    `  lla x${L}, init_f`,
    ...[...Array(32).keys()].map((r) => `  fld f${r}, ${8 * r}(x${L})`),
    `  lla x${L}, init_x`,
    ...xRegs.map((r) => `  ld x${r}, ${8 * r}(x${L})`),
    `  li x${L}, ${DIFF_LAYOUT.iterations}`,
    '  csrw fcsr, zero',
    '  j body',
    'dump:',
    `  lla x${L}, out`,
    ...xRegs.map((r) => `  sd x${r}, ${8 * r}(x${L})`),
    ...[...Array(32).keys()].map((r) => `  fsd f${r}, ${256 + 8 * r}(x${L})`),
    `  frcsr x1`,
    `  sd x1, 512(x${L})`,
    `  li a7, 64; li a0, 1; mv a1, x${L}; li a2, ${DUMP_BYTES}; ecall`,
    `  li a7, 64; li a0, 1; lla a1, window; li a2, ${DIFF_LAYOUT.windowBytes}; ecall`,
    '  li a7, 93; li a0, 0; ecall',
    '  .data',
    'window:',
    quads(windowQuads),
    'init_x:',
    quads(state.x),
    'init_f:',
    quads(state.f),
    '  .bss',
    '  .balign 8',
    `out: .space ${DUMP_BYTES}`,
    '',
  ].join('\n');
}

/** Runs programs under qemu-riscv64-static; each run assembles its own ELF. */
function qemuSide(dir: string): DiffSide {
  writeFileSync(path.join(dir, 'link.ld'), LINKER_SCRIPT);
  return {
    name: 'qemu',
    run(program, state): FinalState {
      const src = path.join(dir, 'p.S');
      const elf = path.join(dir, 'p.elf');
      writeFileSync(src, source(program, state));
      execFileSync(GCC, ['-nostdlib', '-static', '-Wl,--build-id=none', `-march=${MARCH}`, '-mabi=lp64d', '-T', path.join(dir, 'link.ld'), '-o', elf, src]);
      const out = execFileSync(QEMU_USER, [elf], { maxBuffer: 1 << 20 });
      assert.equal(out.length, DUMP_BYTES + DIFF_LAYOUT.windowBytes, 'qemu wrote the whole dump');
      const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
      const x = Array.from({ length: 32 }, (_, r) => (r === 0 || r === DIFF_LAYOUT.loopReg ? 0n : view.getBigUint64(8 * r, true)));
      const f = Array.from({ length: 32 }, (_, r) => view.getBigUint64(256 + 8 * r, true));
      return { x, f, fcsr: view.getBigUint64(512, true), window: new Uint8Array(out.subarray(DUMP_BYTES)) };
    },
  };
}

test(`interp and ${QEMU_USER} agree on ${PROGRAMS} random programs of ${LENGTH} instructions`, () => {
  requirePeer(GCC);
  requirePeer(QEMU_USER);
  const dir = mkdtempSync(path.join(tmpdir(), 'tsemu-diff-qemu-'));
  try {
    const sides = [engineSide('interp'), qemuSide(dir)] as const;
    for (let seed = 1; seed <= PROGRAMS; seed++) {
      const report = differentialRun({ seed: 10_000 + seed, length: LENGTH, sides, fp: seed % 2 === 0, exclude: QEMU_DIFFERS });
      if (report) {
        assert.fail(`seed ${report.seed}: interp and qemu differ\n${report.differences.join('\n')}\nshortest failing program:\n${report.program.join('\n')}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
