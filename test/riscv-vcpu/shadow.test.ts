/**
 * Register shadows (vcpu/mmio-shadow.ts) of word registers: a virtio-mmio
 * transport's InterruptStatus is answered on the vCPU side for 4-byte loads
 * only, and follows the device once the writer is updated; QueueNotify is the
 * one store that may be posted, and only 4 bytes wide; a byte-register window
 * (the UART's kind) next to it keeps its own rules.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { memoryPagesFor } from '../../src/emulator/riscv/layout.js';
import { ShadowReader, ShadowWriter, type ShadowSource } from '../../src/emulator/vcpu/mmio-shadow.js';
import { VirtioRng } from '../../src/emulator/virtio/rng.js';
import { TestDriver } from '../virtio/fake-driver.js';

const VIRTIO_BASE = 0x1000_8000;
const BYTES_BASE = 0x1000_0000;
const ISR = 0x60;
const ACK = 0x64;
const NOTIFY = 0x50;

/** Byte registers 0..7: register r reads r + 0x40 when r is even, has side effects when odd; stores keep register 0's. */
const byteRegisters: ShadowSource = {
  peekable: 8,
  peek: (offset) => (offset % 2 === 0 ? offset + 0x40 : -1),
  storeKeepsPeeks: (offset) => offset === 0,
};

test('a virtio-mmio shadow answers 4-byte InterruptStatus loads and lets only 4-byte QueueNotify stores be posted', async () => {
  const pages = memoryPagesFor(1 << 20);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const driver = new TestDriver(new VirtioRng());
  const writer = new ShadowWriter(memory, 1, VIRTIO_BASE, driver.mmio);
  const bytes = new ShadowWriter(memory, 0, BYTES_BASE, byteRegisters);
  const reader = new ShadowReader(memory, [bytes.window, writer.window]);

  assert.equal(reader.load(VIRTIO_BASE + ISR, 4), true);
  assert.equal(reader.value, 0);
  for (const [offset, size] of [[ISR, 1], [ISR, 2], [ISR, 8], [ISR + 2, 2], [ACK, 4], [0x70, 4], [0x00, 4], [0xfc, 4], [0x100, 4]] as const) {
    assert.equal(reader.load(VIRTIO_BASE + offset, size), false, `load of ${size} at 0x${offset.toString(16)} goes to the device`);
  }
  assert.equal(reader.keeps(VIRTIO_BASE + NOTIFY, 4), true);
  for (const [offset, size] of [[NOTIFY, 1], [NOTIFY, 2], [NOTIFY + 1, 1], [ACK, 4], [0x70, 4], [ISR, 4]] as const) {
    assert.equal(reader.keeps(VIRTIO_BASE + offset, size), false, `store of ${size} at 0x${offset.toString(16)} waits`);
  }

  driver.init();
  driver.add(0, [{ write: 16 }]);
  driver.kick(0);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(driver.irq, true);
  writer.update();
  assert.equal(reader.load(VIRTIO_BASE + ISR, 4), true);
  assert.equal(reader.value, 1);
  assert.equal(reader.value, driver.reg(ISR));

  driver.set(ACK, 1);
  writer.update();
  assert.equal(reader.load(VIRTIO_BASE + ISR, 4), true);
  assert.equal(reader.value, 0);

  // The byte window: any width up to 4 on a register, the low byte's value; posted stores are single bytes.
  assert.equal(reader.load(BYTES_BASE + 2, 1), true);
  assert.equal(reader.value, 0x42);
  assert.equal(reader.load(BYTES_BASE + 4, 4), true);
  assert.equal(reader.value, 0x44);
  assert.equal(reader.load(BYTES_BASE + 3, 1), false);
  assert.equal(reader.keeps(BYTES_BASE, 1), true);
  assert.equal(reader.keeps(BYTES_BASE, 4), false);
  assert.equal(reader.keeps(BYTES_BASE + 2, 1), false);
});
