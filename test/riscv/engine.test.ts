/**
 * Engine contract tests (engine.ts), for every engine: interrupts raised by
 * another thread through MIP + EXIT_REQUEST are taken at a block boundary,
 * run() returns after wfi and on EXIT_REQUEST, a guest spinning on faults
 * cannot keep run() from returning, guest RAM above 2 GiB of host offsets
 * works, random bytes run as code never throw on the host, every opcode has
 * an interpreter handler.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { HS } from '../../src/emulator/riscv/layout.js';
import { TestCpu } from '../../src/emulator/riscv/harness/cpu.js';
import { HANDLERS, Interpreter } from '../../src/emulator/riscv/interp/interpreter.js';
import { encode, OP, OPCODE_NAMES } from '../../src/emulator/riscv/isa/index.js';
import { Random } from '../../src/emulator/riscv/harness/random.js';
import { scratchDir } from '../helpers/peers.js';
import { assemble, type Assembled } from './toolchain.js';
import { TEST_ENGINES } from './isa-runner.js';

const PROGRAM = `
  .section .text.init
  .globl _start
_start:
  lla t0, handler
  csrw mtvec, t0
  li t0, 8            # mie.MSIE
  csrw mie, t0
  csrsi mstatus, 8    # mstatus.MIE
spin:
  addi a0, a0, 1
  j spin
  .balign 4
handler:
  csrr a1, mcause
  csrr a2, mepc
  li t0, 8
  csrc mie, t0
sleep:
  wfi
  addi a3, a3, 1
  j sleep
fault_loop:
  li t0, 0
  jr t0
`;

async function build(): Promise<{ asm: Assembled; elf: Uint8Array; cleanup: () => Promise<void> }> {
  const { dir, cleanup } = await scratchDir();
  const asm = await assemble(dir, 'engine', PROGRAM);
  return { asm, elf: new Uint8Array(await readFile(asm.elf)), cleanup };
}

function word(cpu: TestCpu, offset: number): number {
  return (cpu.hart.stateBase + offset) >> 2;
}

for (const engine of TEST_ENGINES) {
  test(`${engine}: an interrupt set by another thread is taken at a block boundary; wfi returns from run()`, async () => {
    const { asm, elf, cleanup } = await build();
    try {
      const cpu = new TestCpu({ engine });
      cpu.loadElf(elf);
      const spun = cpu.engine.run(10_000);
      assert.ok(spun >= 10_000, `ran ${spun} instructions`);
      assert.ok(cpu.getX(10) > 1000n, 'the spin loop ran');
      const m = new Int32Array(cpu.memory.buffer);
      Atomics.or(m, word(cpu, HS.MIP), 8); // MSIP
      Atomics.store(m, word(cpu, HS.EXIT_REQUEST), 1);
      const before = cpu.engine.run(10_000);
      assert.ok(before < 10_000, 'run() returned early on EXIT_REQUEST');
      assert.equal(Atomics.load(m, word(cpu, HS.EXIT_REQUEST)), 0, 'the engine cleared EXIT_REQUEST');
      assert.equal(cpu.pc, asm.symbols.get('handler'), 'the hart took the interrupt');
      cpu.engine.run(10);
      assert.equal(cpu.getX(11), (1n << 63n) | 3n, 'mcause: machine software interrupt');
      const spin = asm.symbols.get('spin')!;
      assert.ok(cpu.getX(12) >= spin && cpu.getX(12) < spin + 8n, 'mepc is in the spin loop');
      // The handler masks the interrupt and sleeps: each run() returns after one wfi.
      for (let i = 0; i < 5; i++) {
        const n = cpu.engine.run(10_000);
        assert.ok(n < 10, `run() returned after wfi (${n} retired)`);
      }
      assert.ok(cpu.getX(13) >= 4n && cpu.getX(13) <= 5n, `loop iterations between wfis: ${cpu.getX(13)}`);
    } finally {
      await cleanup();
    }
  });

  test(`${engine}: a guest looping on instruction faults still returns from run()`, async () => {
    const { asm, elf, cleanup } = await build();
    try {
      const cpu = new TestCpu({ engine });
      cpu.loadElf(elf);
      cpu.writeCsr(0x305, 0n); // mtvec = 0: every trap faults again
      cpu.pc = asm.symbols.get('fault_loop')!;
      const n = cpu.engine.run(1000);
      assert.ok(n <= 1000);
      assert.equal(cpu.readCsr(0x342), 1n, 'mcause: instruction access fault');
    } finally {
      await cleanup();
    }
  });
}

for (const engine of TEST_ENGINES) {
  test(`${engine}: code and data above 2 GiB of host offsets (unsigned address arithmetic)`, () => {
    const cpu = new TestCpu({ engine, ramBytes: 0xa000_0000 });
    const base = 0x8000_0000 + 0x9000_0000;
    const words = [
      encode(OP.sd, { rs1: 5, rs2: 6, imm: 8 }),
      encode(OP.ld, { rd: 7, rs1: 5, imm: 8 }),
      encode(OP.lh, { rd: 8, rs1: 5, imm: 14 }),
      encode(OP.jal, { rd: 0, imm: 0 }),
    ];
    const code = new Uint8Array(words.length * 4);
    words.forEach((w, i) => new DataView(code.buffer).setUint32(i * 4, w, true));
    cpu.writeMemory(base, code);
    cpu.setX(5, BigInt(base + 0x100));
    cpu.setX(6, 0x8123_4567_89ab_cdefn);
    cpu.pc = BigInt(base);
    // Twice: the first pass fills the TLBs, the second takes the fast paths.
    for (let i = 0; i < 2; i++) {
      cpu.pc = BigInt(base);
      cpu.run({ until: BigInt(base + 12), maxInsns: 100 });
      assert.equal(cpu.getX(7), 0x8123_4567_89ab_cdefn);
      assert.equal(cpu.getX(8), 0xffff_ffff_ffff_8123n);
    }
  });
}

for (const engine of TEST_ENGINES) {
  test(`${engine}: random bytes as code (any instruction, traps, CSRs, jumps) never throw on the host`, () => {
    let retired = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const rnd = new Random(seed);
      const cpu = new TestCpu({ engine, ramBytes: 1 << 20 });
      const code = new Uint8Array(0x4000);
      for (let i = 0; i < code.length; i++) code[i] = rnd.u32() & 0xff;
      // The trap handler skips the faulting parcel: csrr t0, mepc; addi t0, t0, 2; csrw mepc, t0; mret.
      const handler = [0x341022f3, 0x00228293, 0x34129073, 0x30200073];
      handler.forEach((w, i) => new DataView(code.buffer).setUint32(code.length - 16 + i * 4, w, true));
      cpu.writeMemory(0x8000_0000, code);
      for (let r = 1; r < 32; r++) cpu.setX(r, rnd.pick([0n, 0x8000_0000n + BigInt(rnd.int(0, 0x3fff)), BigInt(rnd.u32())]));
      cpu.writeCsr(0x305, BigInt(0x8000_0000 + code.length - 16));
      cpu.pc = 0x8000_0000n;
      for (let i = 0; i < 200; i++) cpu.engine.run(100);
      retired += cpu.instret();
    }
    assert.ok(retired > 20 * 1000, `only ${retired} instructions retired`);
  });
}

test('interpreter step(): a wfi inside a block ends it and is reported through wfiRetired (for the JIT dispatcher)', () => {
  const cpu = new TestCpu({ engine: 'interp' });
  const interp = new Interpreter(cpu.hart);
  const words = [encode(OP.addi, { rd: 10, rs1: 10, imm: 1 }), encode(OP.wfi, {}), encode(OP.addi, { rd: 11, rs1: 11, imm: 1 }), encode(OP.jal, { rd: 0, imm: 0 })];
  const code = new Uint8Array(words.length * 4);
  words.forEach((w, i) => new DataView(code.buffer).setUint32(i * 4, w, true));
  cpu.writeMemory(0x8000_0000, code);
  cpu.pc = 0x8000_0000n;
  assert.equal(interp.step(), 2);
  assert.equal(interp.wfiRetired, true);
  assert.equal(cpu.pc, 0x8000_0008n);
  assert.equal(interp.step(), 2);
  assert.equal(interp.wfiRetired, false);
  assert.equal(cpu.getX(11), 1n);
});

test('the interpreter has a handler for every opcode', () => {
  assert.equal(HANDLERS.length, OPCODE_NAMES.length);
  const illegal = HANDLERS[0];
  const missing = OPCODE_NAMES.filter((_, op) => op !== 0 && HANDLERS[op] === illegal);
  assert.deepEqual(missing, []);
});
