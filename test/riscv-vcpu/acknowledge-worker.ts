/**
 * Test worker for acknowledge.test.ts: plays a vCPU thread acknowledging a virtio-mmio slot's
 * interrupts through its shadow (mmio-shadow.ts ShadowReader.acknowledge, with its own Plic over the
 * shared state) whenever the status has a bit set. It posts 'spinning' when it starts, counts its
 * acknowledgements in the counter word (notified after each), and ends when the main thread stores -1 there.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Plic } from '../../src/emulator/devices/plic.js';
import { ShadowReader, type ShadowWindow } from '../../src/emulator/vcpu/mmio-shadow.js';
import { VIRTIO_MMIO_INTERRUPT } from '../../src/emulator/virtio/mmio.js';

const { memory, plicBase, window, counter } = workerData as { memory: WebAssembly.Memory; plicBase: number; window: ShadowWindow; counter: number };
const plic = new Plic({ harts: 1, ndev: 96, maxPriority: 7, output: () => {}, state: { memory, base: plicBase } });
const reader = new ShadowReader(memory, [window], (source) => plic.irqLine(source));
const i32 = new Int32Array(memory.buffer);
const isr = window.base + VIRTIO_MMIO_INTERRUPT.status;
const ack = window.base + VIRTIO_MMIO_INTERRUPT.acknowledge;
parentPort!.postMessage('spinning');
while (Atomics.load(i32, counter) >= 0) {
  if (reader.load(isr, 4) && reader.value !== 0) {
    reader.acknowledge(ack, 4, reader.value);
    Atomics.add(i32, counter, 1);
    Atomics.notify(i32, counter);
  }
}
