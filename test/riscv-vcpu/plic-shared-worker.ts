/**
 * Test worker for plic-shared.test.ts: plays the main thread's device, driving PLIC source 7's wire
 * through its own Plic over the shared state: `toggles` times high and low, then high for good.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Plic } from '../../src/emulator/devices/plic.js';

const { memory, base, toggles } = workerData as { memory: WebAssembly.Memory; base: number; toggles: number };
const plic = new Plic({ harts: 1, ndev: 96, maxPriority: 7, output: () => {}, state: { memory, base } });
const line = plic.irqLine(7);
for (let i = 0; i < toggles; i++) {
  line.set(true);
  line.set(false);
}
line.set(true);
parentPort!.postMessage('done');
