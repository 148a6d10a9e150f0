/**
 * A virtio-mmio slot's interrupt status kept in its register shadow (mmio-shadow.ts SharedStatus),
 * as the virt machine runs it: the device sets bits on the main thread, a vCPU thread reads them from
 * the shadow and serves InterruptACK itself, clearing bits and driving the slot's PLIC wire. The
 * line must follow the status whichever thread moved last, also when both race.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Plic, plicStateBytes } from '../../src/emulator/devices/plic.js';
import { memoryPagesFor } from '../../src/emulator/riscv/layout.js';
import { SHADOW_END, ShadowReader, ShadowWriter, SharedStatus } from '../../src/emulator/vcpu/mmio-shadow.js';
import { startModuleWorker } from '../../src/emulator/vcpu/start-worker.js';
import { LocalInterruptStatus, followStatus } from '../../src/emulator/virtio/interrupt-status.js';
import { VIRTIO_MMIO_INTERRUPT } from '../../src/emulator/virtio/mmio.js';
import { VirtioRng } from '../../src/emulator/virtio/rng.js';
import type { IrqLine } from '../../src/emulator/bus/interfaces.js';
import { TestDriver } from '../virtio/fake-driver.js';

const VIRTIO_BASE = 0x1000_8000;
const ISR = VIRTIO_MMIO_INTERRUPT.status;
const ACK = VIRTIO_MMIO_INTERRUPT.acknowledge;
const NOTIFY = 0x50;
const SLOT = 1;
const SOURCE = 8;
const PENDING = 0x1000;
const ENABLE_S = 0x2000 + 0x80;
const CLAIM_S = 0x20_0000 + 0x1000 + 4;
const PLIC_BASE = SHADOW_END;

function machineMemory(): WebAssembly.Memory {
  const pages = memoryPagesFor(1 << 20);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  assert.ok(PLIC_BASE + plicStateBytes(1, 96) + 64 <= memory.buffer.byteLength);
  return memory;
}

function sharedPlic(memory: WebAssembly.Memory): Plic {
  return new Plic({ harts: 1, ndev: 96, maxPriority: 7, output: () => {}, state: { memory, base: PLIC_BASE } });
}

function pending(plic: Plic): boolean {
  return (plic.read(PENDING, 4) & (1 << SOURCE)) !== 0;
}

/** Rounds of: the device sets a bit and drives its wire, the worker acknowledges; then the wire must be low. */
function race(i32: Int32Array, counter: number, status: SharedStatus, line: IrqLine, plic: Plic, raised: () => void): void {
  for (let round = 0; round < 2_000; round++) {
    const acks = Atomics.load(i32, counter);
    status.set(1 << (round & 1));
    followStatus(status, line);
    if (pending(plic)) raised();
    // Generous: the worker acknowledges within microseconds.
    assert.notEqual(Atomics.wait(i32, counter, acks, 10_000), 'timed-out', `round ${round}: the worker acknowledged`);
    assert.equal(status.value, 0);
    assert.equal(pending(plic), false, `round ${round}: the wire dropped with the status`);
  }
}

test('a vCPU thread acknowledges a virtio-mmio interrupt from the shadow: the status clears and the PLIC wire drops', async () => {
  const memory = machineMemory();
  const devices = sharedPlic(memory);
  const hart = sharedPlic(memory);
  hart.write(4 * SOURCE, 4, 1);
  hart.write(ENABLE_S, 4, 1 << SOURCE);
  const status = new SharedStatus(memory, SLOT, ISR / 4);
  const driver = new TestDriver(new VirtioRng(), { wire: devices.irqLine(SOURCE), interruptStatus: status });
  const writer = new ShadowWriter(memory, SLOT, VIRTIO_BASE, driver.mmio, { status, line: SOURCE });
  const reader = new ShadowReader(memory, [writer.window], (source) => hart.irqLine(source));
  assert.deepEqual(writer.window.acknowledge, { offset: ACK, status: ISR / 4, line: SOURCE });

  assert.equal(reader.load(VIRTIO_BASE + ISR, 4), true);
  assert.equal(reader.value, 0);
  driver.init();
  driver.add(0, [{ write: 16 }]);
  driver.kick(0);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(driver.irq, true);
  assert.equal(reader.load(VIRTIO_BASE + ISR, 4), true, 'the status word is the device state: no update() needed');
  assert.equal(reader.value, 1);
  assert.equal(pending(hart), true);
  writer.update();
  assert.equal(reader.load(VIRTIO_BASE + ISR, 4) && reader.value, 1, 'update() leaves the live word alone');
  assert.equal(reader.keeps(VIRTIO_BASE + NOTIFY, 4), true);

  for (const [offset, size] of [[ACK, 1], [ACK, 2], [ISR, 4], [NOTIFY, 4], [0x70, 4]] as const) {
    assert.equal(reader.acknowledge(VIRTIO_BASE + offset, size, 1), false, `store of ${size} at 0x${offset.toString(16)} is no acknowledgement`);
  }
  assert.equal(reader.value, 1);
  assert.equal(reader.acknowledge(VIRTIO_BASE + ACK, 4, 1), true);
  assert.equal(reader.load(VIRTIO_BASE + ISR, 4) && reader.value, 0);
  assert.equal(driver.reg(ISR), 0, 'the device reads the cleared status');
  assert.equal(pending(hart), false, 'the wire dropped');
  assert.equal(hart.read(CLAIM_S, 4), 0);

  // The main thread's own acknowledgement path (a mailbox store) still works on the shared word.
  driver.setUsedEvent(0, 1);
  driver.add(0, [{ write: 16 }]);
  driver.kick(0);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(reader.load(VIRTIO_BASE + ISR, 4) && reader.value, 1);
  driver.set(ACK, 1);
  assert.equal(reader.load(VIRTIO_BASE + ISR, 4) && reader.value, 0);
  assert.equal(pending(hart), false);
});

test('a shadow refuses a status word that is not the device\'s clearable register of its slot', () => {
  const memory = machineMemory();
  const devices = sharedPlic(memory);
  const driver = new TestDriver(new VirtioRng(), { wire: devices.irqLine(SOURCE) });
  for (const status of [new SharedStatus(memory, SLOT, 0x70 / 4), new SharedStatus(memory, SLOT + 1, ISR / 4)]) {
    assert.throws(() => new ShadowWriter(memory, SLOT, VIRTIO_BASE, driver.mmio, { status, line: SOURCE }), /not the device's clearable status register/);
  }
  const plain = new ShadowWriter(memory, SLOT, VIRTIO_BASE, driver.mmio);
  assert.equal(plain.window.acknowledge, undefined);
  assert.throws(() => new SharedStatus(memory, SLOT, 64), /does not exist/);
});

test('the line follows the status when the device sets bits while another thread acknowledges them', async () => {
  const memory = machineMemory();
  const devices = sharedPlic(memory);
  devices.write(4 * SOURCE, 4, 1);
  const status = new SharedStatus(memory, SLOT, ISR / 4);
  const driver = new TestDriver(new VirtioRng(), { interruptStatus: status });
  const writer = new ShadowWriter(memory, SLOT, VIRTIO_BASE, driver.mmio, { status, line: SOURCE });
  const counter = (PLIC_BASE + plicStateBytes(1, 96) + 3) >> 2;
  const i32 = new Int32Array(memory.buffer);
  const worker = startModuleWorker(new URL('./acknowledge-worker.ts', import.meta.url), { memory, plicBase: PLIC_BASE, window: writer.window, counter });
  await once(worker, 'message'); // spinning
  const line = devices.irqLine(SOURCE);
  let raisedLast = 0;
  try {
    race(i32, counter, status, line, devices, () => raisedLast++);
  } finally {
    Atomics.store(i32, counter, -1);
    await once(worker, 'exit');
  }
  assert.ok(raisedLast > 0, 'the device raised the wire in some rounds');
});

test('followStatus drives the line again when the status changed under it (another thread acknowledged meanwhile)', () => {
  const status = new LocalInterruptStatus();
  const moves: boolean[] = [];
  let interleave = true;
  // The other thread clears the bit and drives the line low just before this thread's raise lands.
  const line: IrqLine = {
    set(level) {
      if (interleave && level) {
        interleave = false;
        status.clear(1);
        moves.push(false);
      }
      moves.push(level);
    },
  };
  status.set(1);
  followStatus(status, line);
  assert.deepEqual(moves, [false, true, false], 'raised late over the other thread, then lowered to match the status');
  assert.equal(moves.at(-1), status.value !== 0);
});
