/**
 * Worker for the cross-thread atomicity test: a hart on the shared memory
 * increments three counters `count` times each, with amoadd.w, amoadd.d and an
 * lr.d/sc.d retry loop, then posts 'done'.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Hart } from '../../src/emulator/riscv/hart.js';
import { HS } from '../../src/emulator/riscv/layout.js';
import { TestMmio } from './setup.js';

const { memory, id, ramBytes, counter, count } = workerData as {
  memory: WebAssembly.Memory; id: number; ramBytes: number; counter: number; count: number;
};
const hart = new Hart({ memory, id, ramBytes, readMtime: () => 0, mmio: new TestMmio() });
const dv = new DataView(memory.buffer);
const s0 = hart.stateBase + HS.SCRATCH0;
for (let i = 0; i < count; i++) {
  dv.setBigInt64(s0, 1n, true);
  hart.amo('add', counter, 0, 4);
  dv.setBigInt64(s0, 1n, true);
  hart.amo('add', counter + 8, 0, 8);
  for (;;) {
    hart.loadReserved(counter + 16, 0, 8);
    dv.setBigInt64(s0, dv.getBigInt64(s0, true) + 1n, true);
    hart.storeConditional(counter + 16, 0, 8);
    if (dv.getInt32(hart.stateBase + HS.SCRATCH1, true) === 0) break;
  }
}
parentPort!.postMessage('done');
