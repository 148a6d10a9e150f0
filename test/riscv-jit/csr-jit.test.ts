/**
 * CSR instructions in translated code (translate.ts csr, engine.ts
 * csrAccess): a program of CSR reads in the middle of chained blocks (minstret
 * after other instructions), writes that end a block, immediate forms, an
 * illegal CSR that traps to a handler which returns with mret, an minstret
 * write and FP CSRs runs on the interpreter and on the JIT (every block
 * translated at once) and must leave the same registers, pc, instret and CSRs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { TestCpu } from '../../src/emulator/riscv/harness/cpu.js';
import { scratchDir } from '../helpers/peers.js';
import { assemble } from '../riscv/toolchain.js';

const PROGRAM = `
  .section .text.init
  .globl _start
_start:
  li t0, 0x2000          # mstatus.FS = initial
  csrs mstatus, t0
  lla t1, handler
  csrw mtvec, t1
  li s0, 0
loop:
  addi s0, s0, 1
  addi t1, t1, 3
  csrr a0, minstret      # mid-block: counts the two adds
  add s1, s1, a0
  csrw mscratch, s0      # a write ends the block
  csrrs a1, mscratch, zero
  add s2, s2, a1
  csrrwi a2, mscratch, 5
  csrrci a3, mscratch, 1
  csrrsi a4, mscratch, 8
  add s2, s2, a4
  csrr a5, 0x8c0         # no such CSR: illegal instruction, the handler skips it
  csrwi fflags, 3
  csrrwi a6, frm, 2
  csrr a7, fcsr
  add s4, s4, a7
  li t2, 40
  blt s0, t2, loop
  csrw minstret, s0
  csrr s5, minstret
  csrr s6, minstret
  wfi
handler:
  csrr t3, mepc
  addi t3, t3, 4
  csrw mepc, t3
  csrr t4, mcause
  addi s3, s3, 1
  mret
`;

const CSRS = { mscratch: 0x340, mstatus: 0x300, fcsr: 0x003, mcause: 0x342, mepc: 0x341 };

test('jit: CSR reads, writes and traps in translated code match the interpreter (registers, pc, instret, CSRs)', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const asm = await assemble(dir, 'csr-jit', PROGRAM);
    const elf = new Uint8Array(await readFile(asm.elf));
    const interp = new TestCpu({ engine: 'interp' });
    const jit = new TestCpu({ engine: 'jit' }); // translates every block the first time it runs
    for (const cpu of [interp, jit]) {
      cpu.loadElf(elf);
      cpu.engine.run(1_000_000); // returns after the wfi
    }
    assert.equal(interp.pc, asm.symbols.get('handler'), 'the program ran to its wfi');
    assert.equal(interp.getX(8), 40n, 'the loop ran to the end');
    assert.equal(interp.getX(19), 40n, 'the illegal CSR trapped once per iteration');
    assert.equal(jit.pc, interp.pc, 'pc');
    assert.equal(jit.instret(), interp.instret(), 'instret');
    for (let r = 1; r < 32; r++) assert.equal(jit.getX(r), interp.getX(r), `x${r}`);
    for (const [name, csr] of Object.entries(CSRS)) assert.equal(jit.readCsr(csr), interp.readCsr(csr), name);
    assert.ok((jit.engine.stats!().blocks as number) > 5, 'the JIT translated the program');
  } finally {
    await cleanup();
  }
});
