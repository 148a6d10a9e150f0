/**
 * The split virtqueue and the virtio core through the virtio-mmio registers,
 * with guest RAM as a plain array (fake-driver.ts) and virtio-rng as the
 * device (it completes every chain at once): device identification, feature
 * negotiation, direct and indirect chains, interrupt suppression with and
 * without VIRTIO_F_EVENT_IDX, and every guest fault putting the device in the
 * needs-reset state with a log line and a configuration interrupt, never an
 * exception out of a register access; a reset recovers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtioRng } from '../../src/emulator/virtio/rng.js';
import {
  AVAIL_F_NO_INTERRUPT, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, F_EVENT_IDX, F_INDIRECT_DESC, F_VERSION_1, STATUS, featureBits,
} from '../../src/emulator/virtio/spec.js';
import { RAM_BASE, TestDriver } from './fake-driver.js';

const rngDriver = (): TestDriver => new TestDriver(new VirtioRng());

test('mmio identification registers: magic, version 2, device id, vendor', () => {
  const d = rngDriver();
  assert.equal(d.reg(0x000), 0x74726976);
  assert.equal(d.reg(0x004), 2);
  assert.equal(d.reg(0x008), 4);
  assert.equal(d.reg(0x00c), 0x554d4551);
  d.set(0x030, 0);
  assert.equal(d.reg(0x034), 64, 'QueueNumMax');
  d.set(0x030, 1);
  assert.equal(d.reg(0x034), 0, 'no second queue');
});

test('features: VERSION_1, INDIRECT_DESC and EVENT_IDX offered; FEATURES_OK refused without VERSION_1 or with unknown bits', () => {
  const d = rngDriver();
  assert.equal(d.negotiate(), featureBits(F_VERSION_1, F_INDIRECT_DESC, F_EVENT_IDX));
  assert.ok(d.reg(0x070) & STATUS.FEATURES_OK);
  d.negotiate(featureBits(F_VERSION_1));
  assert.equal(d.reg(0x070) & STATUS.FEATURES_OK, 0, 'legacy drivers are refused');
  d.set(0x070, 0);
  d.set(0x070, STATUS.ACKNOWLEDGE | STATUS.DRIVER);
  d.set(0x024, 0);
  d.set(0x020, 1 << 5);
  d.set(0x024, 1);
  d.set(0x020, 1);
  d.set(0x070, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
  assert.equal(d.reg(0x070) & STATUS.FEATURES_OK, 0, 'a bit the device did not offer');
});

test('direct chain: readable then writable buffers; used entry, length and interrupt', async () => {
  const d = rngDriver();
  d.init();
  const head = d.add(0, [{ read: new Uint8Array(4) }, { write: 16 }, { write: 8 }]);
  d.kick(0);
  await d.settle();
  const used = d.takeUsed(0);
  assert.equal(used.length, 1);
  assert.equal(used[0]!.id, head);
  assert.equal(used[0]!.len, 24);
  assert.ok(used[0]!.data.some((b) => b !== 0), 'random bytes written');
  assert.ok(d.irq);
  assert.equal(d.ack(), 1, 'used buffer interrupt');
  assert.equal(d.irq, false);
});

test('indirect chain and a burst of chains answered by one interrupt', async () => {
  const d = rngDriver();
  d.init();
  let raised = 0;
  const set = d.core['options'].irq.set;
  d.core['options'].irq.set = (level: boolean) => {
    if (level && !d.irq) raised++;
    set(level);
  };
  const heads = [
    d.add(0, [{ write: 4 }, { write: 4 }], { indirect: true }),
    d.add(0, [{ write: 32 }]),
    d.add(0, [{ read: Uint8Array.of(1) }, { write: 2 }], { indirect: true }),
  ];
  d.kick(0);
  await d.settle();
  assert.deepEqual(d.takeUsed(0).map((u) => [u.id, u.len]), [[heads[0], 8], [heads[1], 32], [heads[2], 2]]);
  assert.equal(raised, 1);
});

test('without EVENT_IDX, NO_INTERRUPT in the available ring suppresses the interrupt', async () => {
  const d = rngDriver();
  d.init({ drop: featureBits(F_EVENT_IDX) });
  d.setAvailFlags(0, AVAIL_F_NO_INTERRUPT);
  d.add(0, [{ write: 4 }]);
  d.kick(0);
  await d.settle();
  assert.equal(d.takeUsed(0).length, 1);
  assert.equal(d.irq, false);
});

test('EVENT_IDX: avail_event follows the consumed index; used_event decides the interrupt', async () => {
  const d = rngDriver();
  d.init();
  d.setUsedEvent(0, 1);
  d.add(0, [{ write: 4 }]);
  d.kick(0);
  await d.settle();
  assert.equal(d.availEvent(0), 1, 'the device asks for a kick once index 1 is passed');
  assert.equal(d.irq, false, 'used index 1 has not passed used_event 1');
  d.add(0, [{ write: 4 }]);
  d.kick(0);
  await d.settle();
  assert.equal(d.irq, true, 'used index 2 passed used_event 1');
  assert.equal(d.availEvent(0), 2);
  assert.equal(d.takeUsed(0).length, 2);
});

interface FaultCase {
  name: string;
  /** Breaks the queue after init; returns nothing. */
  provoke: (d: TestDriver) => void;
  pattern: RegExp;
  drop?: bigint;
}

const FAULTS: FaultCase[] = [
  {
    name: 'descriptor loop',
    provoke: (d) => {
      const head = d.add(0, [{ write: 4 }, { write: 4 }]);
      const second = d.descAddress(0, head + 1) - RAM_BASE;
      d.ram.dv.setUint16(second + 12, DESC_F_WRITE | DESC_F_NEXT, true);
      d.ram.dv.setUint16(second + 14, head, true);
    },
    pattern: /loops/,
  },
  {
    name: 'loop inside an indirect table',
    provoke: (d) => {
      const head = d.add(0, [{ write: 4 }, { write: 4 }], { indirect: true });
      const table = Number(d.ram.dv.getUint32(d.descAddress(0, head) - RAM_BASE, true)) - RAM_BASE;
      d.ram.dv.setUint16(table + 16 + 12, DESC_F_WRITE | DESC_F_NEXT, true);
      d.ram.dv.setUint16(table + 16 + 14, 0, true);
    },
    pattern: /loops/,
  },
  {
    name: 'buffer outside RAM',
    provoke: (d) => {
      const head = d.add(0, [{ write: 4 }]);
      d.ram.dv.setUint32(d.descAddress(0, head) - RAM_BASE, 0x1000, true);
    },
    pattern: /outside guest RAM/,
  },
  {
    name: 'buffer of an indirect table outside RAM',
    provoke: (d) => {
      const head = d.add(0, [{ write: 4 }, { write: 4 }], { indirect: true });
      const table = d.ram.dv.getUint32(d.descAddress(0, head) - RAM_BASE, true) - RAM_BASE;
      d.ram.dv.setUint32(table + 16, 0x1000, true);
    },
    pattern: /buffer of descriptor 1 at 0x1000\+4 is outside guest RAM/,
  },
  {
    name: 'length past the end of RAM',
    provoke: (d) => {
      const head = d.add(0, [{ write: 4 }]);
      d.ram.dv.setUint32(d.descAddress(0, head) - RAM_BASE + 8, d.ram.size, true);
    },
    pattern: /outside guest RAM/,
  },
  {
    name: 'next index past the table',
    provoke: (d) => {
      const head = d.add(0, [{ write: 4 }]);
      const at = d.descAddress(0, head) - RAM_BASE;
      d.ram.dv.setUint16(at + 12, DESC_F_WRITE | DESC_F_NEXT, true);
      d.ram.dv.setUint16(at + 14, 200, true);
    },
    pattern: /past the table/,
  },
  {
    name: 'head index past the table',
    provoke: (d) => {
      d.add(0, [{ write: 4 }]);
      d.ram.dv.setUint16(d.queues[0]!.avail + 4 - RAM_BASE, 99, true);
    },
    pattern: /names descriptor 99/,
  },
  {
    name: 'available index ahead by more than the queue size',
    provoke: (d) => d.ram.dv.setUint16(d.queues[0]!.avail + 2 - RAM_BASE, 9, true),
    pattern: /ahead/,
  },
  {
    name: 'readable buffer after a writable one',
    provoke: (d) => {
      d.add(0, [{ write: 4 }, { read: Uint8Array.of(1) }]);
    },
    pattern: /follows a device-writable/,
  },
  {
    name: 'nested indirect table',
    provoke: (d) => {
      const head = d.add(0, [{ write: 4 }], { indirect: true });
      const table = d.ram.dv.getUint32(d.descAddress(0, head) - RAM_BASE, true) - RAM_BASE;
      d.ram.dv.setUint16(table + 12, DESC_F_INDIRECT, true);
      d.ram.dv.setUint32(table + 8, 16, true);
    },
    pattern: /itself indirect/,
  },
  {
    name: 'indirect table of a partial descriptor',
    provoke: (d) => {
      const head = d.add(0, [{ write: 4 }], { indirect: true });
      d.ram.dv.setUint32(d.descAddress(0, head) - RAM_BASE + 8, 20, true);
    },
    pattern: /whole number of descriptors/,
  },
  {
    name: 'indirect descriptor without INDIRECT_DESC negotiated',
    provoke: (d) => {
      d.add(0, [{ write: 4 }], { indirect: true });
    },
    pattern: /not negotiated/,
    drop: featureBits(F_INDIRECT_DESC),
  },
];

for (const c of FAULTS) {
  test(`guest fault → needs-reset: ${c.name}`, async () => {
    const d = rngDriver();
    d.init({ drop: c.drop });
    c.provoke(d);
    assert.doesNotThrow(() => d.kick(0));
    await d.settle();
    assert.equal(d.lines.length, 1, d.lines.join('\n'));
    assert.match(d.lines[0]!, /^tsemu: virtio-rng \(virtio-mmio@10008000\): .*; the device needs a reset$/);
    assert.match(d.lines[0]!, c.pattern);
    assert.ok(d.reg(0x070) & STATUS.DEVICE_NEEDS_RESET);
    assert.ok(d.irq);
    assert.equal(d.reg(0x060) & 2, 2, 'configuration change interrupt');
    assert.equal(d.reg(0x0fc), 1, 'configuration generation bumped');
    // The device stays stopped: a good chain is not served until the driver resets it.
    d.add(0, [{ write: 4 }]);
    d.kick(0);
    await d.settle();
    assert.equal(d.takeUsed(0).length, 0);
    d.init();
    assert.equal(d.reg(0x070) & STATUS.DEVICE_NEEDS_RESET, 0);
    d.add(0, [{ write: 4 }]);
    d.kick(0);
    await d.settle();
    assert.equal(d.takeUsed(0).length, 1, 'served again after a reset');
  });
}

for (const [name, size, pattern] of [
  ['not a power of 2', 6, /queue size 6 is not a power of 2 up to 64/],
  ['above the maximum', 128, /queue size 128/],
  ['zero', 0, /queue size 0/],
] as const) {
  test(`queue size ${name} → needs-reset when the queue is made ready`, () => {
    const d = rngDriver();
    d.negotiate();
    assert.doesNotThrow(() => d.setupQueue(0, size));
    assert.match(d.lines.join('\n'), pattern);
    assert.ok(d.reg(0x070) & STATUS.DEVICE_NEEDS_RESET);
    assert.equal(d.reg(0x044), 0, 'queue not ready');
  });
}

test('rings outside RAM or misaligned → needs-reset', () => {
  const d = rngDriver();
  const place = (desc: number, used: number): void => {
    d.negotiate();
    d.set(0x030, 0);
    d.set(0x038, 8);
    d.set(0x080, desc);
    d.set(0x090, RAM_BASE + 0x100);
    d.set(0x0a0, used);
    d.set(0x044, 1);
  };
  place(0x7fff_f000, RAM_BASE + 0x200);
  assert.match(d.lines[0]!, /descriptor table at 0x7ffff000\+128 is outside guest RAM/);
  place(RAM_BASE, RAM_BASE + 0x201);
  assert.match(d.lines[1]!, /used ring at 0x80000201 is not 4-byte aligned/);
});

test('mmio: queue layout is frozen while ready; reset clears status, interrupts and queues', async () => {
  const d = rngDriver();
  d.init();
  d.set(0x030, 0);
  d.set(0x038, 4);
  d.set(0x080, RAM_BASE + 0x8000);
  assert.equal(d.core.queueRegisters(0)!.size, 8, 'QueueNum ignored while ready');
  assert.equal(d.core.queueRegisters(0)!.desc, d.queues[0]!.desc, 'QueueDesc ignored while ready');
  d.add(0, [{ write: 4 }]);
  d.kick(0);
  await d.settle();
  assert.ok(d.irq);
  d.set(0x070, 0);
  assert.equal(d.reg(0x070), 0);
  assert.equal(d.reg(0x060), 0);
  assert.equal(d.irq, false);
  assert.equal(d.reg(0x044), 0, 'queue no longer ready');
  d.add(0, [{ write: 4 }]);
  d.kick(0);
  await d.settle();
  assert.equal(d.takeUsed(0).length, 1, 'only the chain served before the reset');
});

test('mmio: narrow accesses to registers read 0 and are ignored; config space takes 1, 2 and 4 bytes', () => {
  const d = rngDriver();
  assert.equal(d.mmio.read(0x000, 2), 0);
  d.mmio.write(0x070, 1, STATUS.ACKNOWLEDGE);
  assert.equal(d.reg(0x070), 0);
  assert.equal(d.mmio.read(0x100, 1), 0, 'rng has no configuration: reads 0');
  assert.equal(d.mmio.read(0x104, 4), 0);
});
