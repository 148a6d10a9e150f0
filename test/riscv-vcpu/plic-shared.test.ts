/**
 * The PLIC with its state in shared memory (devices/plic.ts PlicOptions.state), as the virt machine
 * runs it: the main thread's devices drive wires through one Plic, each vCPU thread claims and
 * completes through another over the same words. Both must act as one PLIC, also when a wire moves
 * on another thread while claims and completions go on (the state's lock orders them).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Plic, plicStateBytes } from '../../src/emulator/devices/plic.js';
import { startModuleWorker } from '../../src/emulator/vcpu/start-worker.js';

const ENABLE_S = 0x2000 + 0x80;
const CLAIM_S = 0x20_0000 + 0x1000 + 4;
const BASE = 0x1000;

function sharedPlic(memory: WebAssembly.Memory, outputs: boolean[]): Plic {
  return new Plic({ harts: 1, ndev: 96, maxPriority: 7, output: (_hart, mode, level) => mode === 'S' && outputs.push(level), state: { memory, base: BASE } });
}

test('two Plic objects over one shared state are one PLIC', () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  assert.ok(BASE + plicStateBytes(1, 96) <= 65536);
  const devicesSide: boolean[] = [];
  const hartSide: boolean[] = [];
  const devices = sharedPlic(memory, devicesSide);
  const hart = sharedPlic(memory, hartSide);
  hart.write(4 * 5, 4, 3);
  hart.write(ENABLE_S, 4, 1 << 5);
  assert.equal(devices.read(4 * 5, 4), 3, 'priority written on one side reads on the other');
  devices.irqLine(5).set(true);
  assert.deepEqual(devicesSide, [true], 'the wire raised the output once, where it moved');
  assert.equal(hart.read(0x1000, 4), 1 << 5, 'pending');
  assert.equal(hart.read(CLAIM_S, 4), 5);
  assert.deepEqual(hartSide, [false], 'the claim lowered the output where it was made');
  devices.irqLine(5).set(false);
  hart.write(CLAIM_S, 4, 5);
  assert.equal(hart.read(CLAIM_S, 4), 0, 'nothing pending after the wire dropped and the claim completed');
  assert.deepEqual([...devicesSide, ...hartSide], [true, false]);
});

test('a wire moving on another thread during claims and completions ends pending and raised', async () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  const outputs: boolean[] = [];
  const hart = sharedPlic(memory, outputs);
  hart.write(4 * 7, 4, 1);
  hart.write(ENABLE_S, 4, 1 << 7);
  const worker = startModuleWorker(new URL('./plic-shared-worker.ts', import.meta.url), { memory, base: BASE, toggles: 20_000 });
  let done = false;
  void once(worker, 'message').then(() => (done = true));
  let claims = 0;
  while (!done) {
    const source = hart.read(CLAIM_S, 4);
    if (source !== 0) {
      assert.equal(source, 7);
      claims++;
      hart.write(CLAIM_S, 4, source);
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  await worker.terminate();
  // The wire is high for good: after any claim in flight completes, source 7 is pending and claimable.
  assert.equal(hart.read(0x1000, 4), 1 << 7, `pending after ${claims} claims`);
  assert.equal(hart.read(CLAIM_S, 4), 7);
  hart.write(CLAIM_S, 4, 7);
  assert.equal(hart.read(CLAIM_S, 4), 7, 'still high: pending again after completion');
});
