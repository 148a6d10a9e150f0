/** The CLINT: mtime at 10 MHz from shared memory, mtimecmp and msip, the interrupt bits, other threads. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { MmioBus } from '../../src/emulator/bus/mmio-bus.js';
import { Clint, type InterruptSink } from '../../src/emulator/devices/aclint.js';
import { MIP_MSIP, MIP_MTIP, MIP_STIP } from '../../src/emulator/riscv/priv/csr-defs.js';
import { startModuleWorker } from '../../src/emulator/vcpu/start-worker.js';

const TICKS_PER_MS = 10_000;

class Sink implements InterruptSink {
  readonly mip = [0, 0];
  readonly wakes = [0, 0];
  raiseInterrupt(hart: number, bits: number): void {
    this.mip[hart] |= bits;
    this.wakes[hart]++;
  }
  lowerInterrupt(hart: number, bits: number): void {
    this.mip[hart] &= ~bits;
  }
  wake(hart: number): void {
    this.wakes[hart]++;
  }
}

function setup(timerBit?: number) {
  const memory = new WebAssembly.Memory({ initial: 64, maximum: 64, shared: true });
  const sink = new Sink();
  const clint = new Clint({ memory, harts: 2, sink, timerBit });
  clint.reset();
  const bus = new MmioBus();
  bus.map(0x200_0000, 0x1_0000, clint, 'clint');
  return { memory, sink, clint, bus };
}

function hostMs(): number {
  const [s, ns] = process.hrtime();
  return s * 1000 + ns / 1e6;
}

describe('CLINT', () => {
  it('counts mtime at 10 MHz from 0 at reset', async () => {
    const { clint } = setup();
    const before = hostMs();
    const m0 = clint.readMtime();
    await sleep(30);
    const m1 = clint.readMtime();
    const after = hostMs();
    assert.ok(m0 >= 0 && m0 < (after - before) * TICKS_PER_MS + 1);
    assert.ok(m1 - m0 <= (after - before) * TICKS_PER_MS + 1, 'not faster than the host clock');
    assert.ok(m1 - m0 >= 30 * TICKS_PER_MS - 1, 'not slower than the host clock');
  });

  it('reads mtime as one 64-bit value through the bus and lets the guest set it', () => {
    const { clint, bus } = setup();
    assert.ok(bus.store(0x200_bff8, 8, 0xffff_fff0, 0x12));
    assert.ok(bus.load(0x200_bff8, 8));
    const value = bus.hi * 2 ** 32 + bus.lo;
    assert.ok(value >= 0x12_ffff_fff0 && value < 0x12_ffff_fff0 + 10 * TICKS_PER_MS * 1000, value.toString(16));
    assert.ok(clint.readMtime() >= value);
  });

  it('raises the timer bit when mtime reaches mtimecmp, and lowers it for a later deadline', () => {
    const { clint, sink, bus } = setup();
    assert.equal(clint.timerDeadline(1), 2 ** 64 - 1, 'no timer armed after reset');
    assert.ok(bus.store(0x200_4008, 8, 5, 0));
    assert.equal(clint.timerDeadline(1), 5);
    assert.equal(sink.mip[1] & MIP_MTIP, MIP_MTIP);
    assert.equal(sink.mip[0], 0);
    assert.equal(clint.updateTimer(1), 0);
    const later = clint.readMtime() + 60 * 1000 * TICKS_PER_MS;
    const wakesBefore = sink.wakes[1];
    assert.ok(bus.store(0x200_4008, 8, later % 2 ** 32, Math.floor(later / 2 ** 32)));
    assert.equal(sink.mip[1] & MIP_MTIP, 0);
    assert.ok(sink.wakes[1] > wakesBefore, 'a sleeping hart recomputes its deadline');
    assert.ok(clint.updateTimer(1) > 59 * 1000 * TICKS_PER_MS);
    assert.ok(bus.load(0x200_4008, 8));
    assert.equal(bus.hi * 2 ** 32 + bus.lo, later);
  });

  it('raises the timer bit the machine chose (STIP under tsemu’s SBI)', () => {
    const { clint, sink } = setup(MIP_STIP);
    clint.setTimecmp(0, 0, 0);
    clint.updateTimer(0);
    assert.equal(sink.mip[0], MIP_STIP);
  });

  it('raises and lowers MSIP through msip', () => {
    const { sink, bus } = setup();
    assert.ok(bus.store(0x200_0004, 4, 1, 0));
    assert.equal(sink.mip[1], MIP_MSIP);
    assert.ok(bus.load(0x200_0004, 4));
    assert.equal(bus.lo, 1);
    assert.ok(bus.store(0x200_0004, 4, 0xfffe, 0));
    assert.equal(sink.mip[1], 0);
    assert.ok(bus.load(0x200_0008, 4), 'hart 2 does not exist: reads 0');
    assert.equal(bus.lo, 0);
    bus.store(0x200_0008, 4, 1, 0);
    assert.deepEqual(sink.mip, [0, 0]);
    assert.ok(bus.load(0x200_0000, 1));
    assert.equal(bus.lo, 0, 'byte reads read 0');
  });

  it('shares its state with a Clint on another thread', async () => {
    const { memory, clint } = setup();
    clint.setTimecmp(1, 0x89ab_cdef, 0x7);
    const before = clint.readMtime();
    const worker = startModuleWorker(new URL('./clint-worker.ts', import.meta.url), { memory });
    const [reply] = (await once(worker, 'message')) as [{ mtime: number; deadline: number; viaMmio: number }];
    const after = clint.readMtime();
    await worker.terminate();
    assert.ok(reply.mtime >= before && reply.mtime <= after, `${before} <= ${reply.mtime} <= ${after}`);
    assert.equal(reply.deadline, 0x7_89ab_cdef);
    assert.equal(reply.viaMmio, 0x89ab_cdef);
  });
});
