/**
 * The JIT's background compilation (compiler.ts, compile-worker.ts,
 * batch-build.ts): batches packed for the worker unpack to the same blocks;
 * blocks compiled on the worker are installed and run; a block whose page is
 * written while its batch is in flight is not installed; a program that
 * rewrites its own code while the worker compiles ends like the interpreter.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { TestCpu } from '../../src/emulator/riscv/harness/cpu.js';
import { decodeBlock, encode, OP } from '../../src/emulator/riscv/isa/index.js';
import { packBlocks, unpackBlocks, type BlockRequest } from '../../src/emulator/riscv/jit/batch-build.js';
import { TRANSLATED, type CodeCache } from '../../src/emulator/riscv/jit/code-cache.js';
import { createJitEngine, DEFAULT_TUNING } from '../../src/emulator/riscv/jit/index.js';
import { HS, RAM_GPA_BASE, RAM_HOST_BASE } from '../../src/emulator/riscv/layout.js';
import { Random } from '../../src/emulator/riscv/harness/random.js';
import { scratchDir } from '../helpers/peers.js';
import { assemble } from '../riscv/toolchain.js';

const BACKGROUND = { ...DEFAULT_TUNING, hotThreshold: 1, flushAfter: 1, background: true };

/** Polls the cache until `done` holds (the worker answers in milliseconds; the wait is for a loaded machine). */
function waitFor(cache: CodeCache, done: () => boolean): void {
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (let waited = 0; !done(); waited += 5) {
    if (waited > 60_000) throw new Error('the compile worker did not answer');
    Atomics.wait(nap, 0, 0, 5);
    cache.receive();
  }
}

test('background: packed batches unpack to the same blocks (random code, every field and slot pair)', () => {
  const rnd = new Random(7);
  const blocks: BlockRequest[] = [];
  for (let b = 0; b < 50; b++) {
    const words = Array.from({ length: 64 }, () => rnd.u32());
    const block = decodeBlock(0, 0, (off) => (words[off >> 2]! >>> ((off & 2) * 8)) & 0xffff);
    const host = (RAM_HOST_BASE + rnd.u32()) >>> 0;
    blocks.push({ host, insns: block.insns, offsets: block.offsets, bytes: block.bytes, slots: [host + 8, b + 1, 0xffff_fff0, 70000] });
  }
  const back = unpackBlocks(packBlocks(blocks));
  assert.equal(back.length, blocks.length);
  back.forEach((b, k) => {
    const a = blocks[k]!;
    assert.deepEqual({ ...b, insns: b.insns.map((d) => ({ ...d })) }, { ...a, insns: a.insns.map((d) => ({ ...d })) });
  });
});

/** A counting loop at RAM_GPA_BASE: addi a0, a0, 1; addi a1, a1, -1; bnez a1, loop; then wfi. */
function countingLoop(cpu: TestCpu, step = 1): void {
  const words = [
    encode(OP.addi, { rd: 10, rs1: 10, imm: step }),
    encode(OP.addi, { rd: 11, rs1: 11, imm: -1 }),
    encode(OP.bne, { rs1: 11, rs2: 0, imm: -8 }),
    0x10500073, // wfi
  ];
  const code = new Uint8Array(words.length * 4);
  words.forEach((w, i) => new DataView(code.buffer).setUint32(i * 4, w, true));
  cpu.writeMemory(RAM_GPA_BASE, code);
}

test('background: blocks compiled on the worker are installed and run', () => {
  const cpu = new TestCpu({ engine: 'interp' });
  const engine = createJitEngine(cpu.hart, BACKGROUND);
  countingLoop(cpu);
  cpu.setX(11, 1_000_000n);
  cpu.pc = BigInt(RAM_GPA_BASE);
  engine.run(10); // the loop's block is queued and sent
  waitFor(engine.cache, () => engine.cache.stats.blocks > 0);
  const e = engine.cache.entry(RAM_HOST_BASE);
  assert.equal(e.state, TRANSLATED);
  while (cpu.getX(11) !== 0n) engine.run(1_000_000);
  assert.equal(cpu.getX(10), 1_000_000n);
  assert.ok(engine.dispatches < 1000, `the loop ran in WebAssembly (${engine.dispatches} dispatches)`);
  assert.ok(engine.cache.stats.workerMillis > 0);
});

test('background: a block whose page is written while its batch is in flight is not installed', () => {
  const cpu = new TestCpu({ engine: 'interp' });
  const engine = createJitEngine(cpu.hart, BACKGROUND);
  countingLoop(cpu);
  cpu.setX(11, 1_000_000n);
  cpu.pc = BigInt(RAM_GPA_BASE);
  engine.run(3); // one interpreted block: queued and sent
  const e = engine.cache.entry(RAM_HOST_BASE);
  assert.notEqual(e.state, TRANSLATED, 'the batch is still in flight');
  // The guest rewrites the loop's first instruction (addi a0, a0, 2) through the hart's store path.
  const dv = new DataView(cpu.memory.buffer);
  dv.setUint32(cpu.hart.stateBase + HS.SCRATCH0, encode(OP.addi, { rd: 10, rs1: 10, imm: 2 }), true);
  assert.ok(cpu.hart.store(RAM_GPA_BASE, 0, 4));
  waitFor(engine.cache, () => engine.cache.stats.modules > 0);
  assert.notEqual(e.state, TRANSLATED, 'the stale translation was dropped');
  assert.equal(engine.cache.table.get(e.slot), engine.cache.vacant);
  cpu.setX(10, 0n);
  cpu.setX(11, 1000n);
  cpu.pc = BigInt(RAM_GPA_BASE);
  for (let i = 0; i < 100 && cpu.getX(11) !== 0n; i++) engine.run(100_000);
  assert.equal(cpu.getX(10), 2000n, 'the new code ran');
});

const SELF_MODIFYING = `
  .option norvc
  .section .text.init
  .globl _start
_start:
  li s0, 0
  li s1, 300
outer:
  li t0, 50
inner:
  addi a0, a0, 1        # rewritten after each pass: the immediate becomes the pass number
  addi t0, t0, -1
  bnez t0, inner
  lla t1, inner
  lw t2, 0(t1)
  li t3, 0x000fffff
  and t2, t2, t3        # keep rd, rs1, funct3, opcode
  slli t4, s0, 20
  or t2, t2, t4
  sw t2, 0(t1)
  fence.i
  addi s0, s0, 1
  blt s0, s1, outer
  wfi
`;

test('background: code rewritten while the worker compiles ends like the interpreter', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const asm = await assemble(dir, 'background-smc', SELF_MODIFYING);
    const elf = new Uint8Array(await readFile(asm.elf));
    const interp = new TestCpu({ engine: 'interp' });
    interp.loadElf(elf);
    interp.engine.run(10_000_000);
    const cpu = new TestCpu({ engine: 'interp' });
    const engine = createJitEngine(cpu.hart, { ...BACKGROUND, hotThreshold: 2 });
    cpu.loadElf(elf);
    engine.run(10_000_000);
    assert.equal(cpu.pc, interp.pc, 'both stopped after the wfi');
    for (let r = 1; r < 32; r++) assert.equal(cpu.getX(r), interp.getX(r), `x${r}`);
    assert.equal(cpu.instret(), interp.instret(), 'instret');
    assert.equal(interp.getX(10), 50n + 50n * ((298n * 299n) / 2n), 'a0: pass k > 0 added k - 1 fifty times (the first pass 1)');
  } finally {
    await cleanup();
  }
});
