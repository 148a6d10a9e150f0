/**
 * The virtio-pci transport against a fake guest (pci-driver.ts): the
 * configuration header and capability list, the BAR sizing protocol and
 * memory decoding, feature negotiation through the common configuration,
 * queue setup, a virtio-rng request and virtio-blk writes and reads through
 * real split virtqueues in guest RAM, INTx through the ISR (read clears,
 * INTx disable masks, the status bit follows), the PCI_CFG window, and a
 * guest fault that puts the device into needs-reset until the driver resets it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { closeImage, openImage } from '../../src/block/open.js';
import { createImage } from '../../src/block/ops/create.js';
import { VirtioBlk } from '../../src/emulator/virtio/blk.js';
import { VirtioRng } from '../../src/emulator/virtio/rng.js';
import { STATUS } from '../../src/emulator/virtio/spec.js';
import { BAR_BASE, COMMON, IRQ, PciTestDriver } from './pci-driver.js';

test('configuration header: modern virtio ids, class, BAR 0, INTA on the preset line, capability list', () => {
  const d = new PciTestDriver(new VirtioRng());
  assert.equal(d.cfg(0x00, 2), 0x1af4);
  assert.equal(d.cfg(0x02, 2), 0x1044, '0x1040 + device ID 4');
  assert.equal(d.cfg(0x08, 1), 1, 'revision 1: modern only');
  assert.equal(d.cfg(0x08) >>> 8, 0x00ff00, 'class: unclassified');
  assert.equal(d.cfg(0x0e, 1), 0, 'type-0 header');
  assert.equal(d.cfg(0x2c, 2), 0x1af4, 'subsystem vendor');
  assert.equal(d.cfg(0x06, 2) & 0x10, 0x10, 'capabilities list');
  assert.equal(d.cfg(0x10), BAR_BASE, '32-bit memory BAR at the preset address');
  assert.equal(d.cfg(0x04, 2) & 0x6, 0x6, 'memory decoding and bus master on');
  assert.equal(d.cfg(0x3c, 1), IRQ);
  assert.equal(d.cfg(0x3d, 1), 1, 'INTA');
  const caps = d.capabilities();
  assert.deepEqual(caps.map((c) => [c.type, c.bar]), [[1, 0], [2, 0], [3, 0], [4, 0], [5, 0]]);
  assert.ok(caps.every((c) => d.cfg(c.at, 1) === 0x09), 'vendor-specific capabilities');
  const notify = caps.find((c) => c.type === 2)!;
  assert.equal(notify.multiplier, 4);
  assert.ok(caps.find((c) => c.type === 1)!.length >= 0x38, 'the common configuration through queue_device');
});

test('BAR sizing: all ones read back the size mask; the guest moves the BAR; decoding off hides it', () => {
  const d = new PciTestDriver(new VirtioRng());
  d.setCfg(0x10, 4, 0xffff_ffff);
  assert.equal(d.cfg(0x10), 0xffff_c000, '16 KiB, 32-bit, non-prefetchable');
  assert.equal(d.pci.window(), null, 'no decoding while the guest sizes the BAR');
  d.setCfg(0x10, 4, 0xd000_0000);
  assert.equal(d.pci.window()?.base, 0xd000_0000);
  d.setCfg(0x04, 2, 0);
  assert.equal(d.pci.window(), null, 'memory decoding off');
  d.setCfg(0x00, 4, 0);
  d.setCfg(0x3d, 1, 7);
  assert.equal(d.cfg(0x00, 2), 0x1af4, 'read-only fields ignore writes');
  assert.equal(d.cfg(0x3d, 1), 1);
});

test('feature negotiation: VERSION_1, INDIRECT_DESC and EVENT_IDX offered; a set without VERSION_1 loses FEATURES_OK', () => {
  const d = new PciTestDriver(new VirtioRng());
  let offered = 0n;
  assert.equal(d.negotiate((o) => (offered = o) & ~(1n << 32n)), false);
  assert.equal(offered, (1n << 32n) | (1n << 28n) | (1n << 29n));
  assert.equal(d.negotiate((o) => o & (1n << 32n)), true);
  assert.equal(d.common(COMMON.NUMQ, 2), 1);
  assert.equal(d.common(COMMON.MSIX, 2), 0xffff, 'no MSI-X: NO_VECTOR');
});

test('virtio-rng: a request through queue 0, completed with INTx; reading the ISR clears it and lowers the line', async () => {
  const d = new PciTestDriver(new VirtioRng());
  d.init();
  d.setCommon(COMMON.QSELECT, 2, 0);
  assert.equal(d.common(COMMON.QSIZE, 2), 8);
  assert.equal(d.common(COMMON.QENABLE, 2), 1);
  assert.equal(d.common(COMMON.QNOTIFYOFF, 2), 0);
  const head = d.submit(0, [{ write: 64 }]);
  await d.settle();
  const [used] = d.takeUsed(0);
  assert.equal(used?.id, head);
  assert.equal(used?.len, 64);
  assert.ok(used!.data.some((b) => b !== 0));
  assert.equal(d.irq, true);
  assert.equal(d.cfg(0x06, 2) & 0x08, 0x08, 'status: interrupt pending');
  assert.equal(d.readIsr(), 1, 'used-buffer interrupt');
  assert.equal(d.irq, false);
  assert.equal(d.readIsr(), 0, 'read clears');
  assert.equal(d.cfg(0x06, 2) & 0x08, 0);
});

test('INTx disable masks the line while the ISR keeps its bit; clearing it raises the line again', async () => {
  const d = new PciTestDriver(new VirtioRng());
  d.init();
  d.setCfg(0x04, 2, d.cfg(0x04, 2) | 0x400);
  d.submit(0, [{ write: 8 }]);
  await d.settle();
  assert.equal(d.irq, false);
  assert.equal(d.cfg(0x06, 2) & 0x08, 0x08, 'the status bit shows the pending interrupt');
  d.setCfg(0x04, 2, d.cfg(0x04, 2) & ~0x400);
  assert.equal(d.irq, true);
});

test('the PCI_CFG capability reads and writes the BAR at the offset it is given', () => {
  const d = new PciTestDriver(new VirtioRng());
  const cap = d.capabilities().find((c) => c.type === 5)!;
  const common = d.region(1);
  d.setCfg(cap.at + 4, 1, 0);
  d.setCfg(cap.at + 8, 4, common + COMMON.NUMQ);
  d.setCfg(cap.at + 12, 4, 2);
  assert.equal(d.cfg(cap.at + 16), 1, 'num_queues through the window');
  d.setCfg(cap.at + 8, 4, common + COMMON.STATUS);
  d.setCfg(cap.at + 12, 4, 1);
  d.setCfg(cap.at + 16, 4, STATUS.ACKNOWLEDGE);
  assert.equal(d.common(COMMON.STATUS, 1), STATUS.ACKNOWLEDGE);
  d.setCfg(cap.at + 4, 1, 3);
  assert.equal(d.cfg(cap.at + 16), 0, 'a BAR the device does not have reads 0');
});

test('a queue size that is not a power of 2 puts the device into needs-reset with a log line; a reset clears it', () => {
  const d = new PciTestDriver(new VirtioRng());
  assert.ok(d.negotiate());
  d.setCommon(COMMON.QSELECT, 2, 0);
  d.setCommon(COMMON.QSIZE, 2, 6);
  d.setCommon(COMMON.QENABLE, 2, 1);
  assert.equal(d.common(COMMON.STATUS, 1) & STATUS.DEVICE_NEEDS_RESET, STATUS.DEVICE_NEEDS_RESET);
  assert.match(d.lines.join('\n'), /virtio-rng \(virtio-pci@00:01\.0\): queue size 6 is not a power of 2/);
  assert.equal(d.readIsr() & 2, 2, 'a configuration interrupt');
  d.setCommon(COMMON.STATUS, 1, 0);
  assert.equal(d.common(COMMON.STATUS, 1), 0);
  d.setCommon(COMMON.QSELECT, 2, 0);
  assert.equal(d.common(COMMON.QSIZE, 2), 64, 'the queue size is back at its maximum');
});

/** Waits for queue 0's next completions (the block layer's I/O runs on the event loop). */
async function completions(d: PciTestDriver): Promise<{ len: number; data: Uint8Array }[]> {
  for (;;) {
    const used = d.takeUsed(0);
    if (used.length > 0) return used;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

test('virtio-blk: a write then a read of the same sectors through the PCI transport, on a qcow2 image', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'tsemu-virtio-pci-'));
  try {
    const file = path.join(dir, 'disk.qcow2');
    await createImage({ filename: file, format: 'qcow2', size: '1M', options: [] });
    const node = await openImage(file, {});
    try {
      const d = new PciTestDriver(new VirtioBlk({ node, id: 'd0', readOnly: false, writeCache: true, discard: 'unmap' }));
      assert.equal(d.cfg(0x02, 2), 0x1042);
      assert.equal(d.cfg(0x08) >>> 8, 0x010000, 'class: mass storage');
      d.init();
      const capacity = d.mmio(BAR_BASE + d.region(4), 4);
      assert.equal(capacity, 2048, 'capacity in sectors from the device configuration');
      const header = (type: number, sector: number): Uint8Array => {
        const h = new Uint8Array(16);
        new DataView(h.buffer).setUint32(0, type, true);
        new DataView(h.buffer).setUint32(8, sector, true);
        return h;
      };
      const data = Uint8Array.from({ length: 1024 }, (_, i) => (i * 13 + 1) & 0xff);
      d.submit(0, [{ read: header(1, 10) }, { read: data }, { write: 1 }]);
      const written = await completions(d);
      assert.deepEqual(written.map((u) => [u.len, u.data[0]]), [[1, 0]], 'write: status OK');
      d.submit(0, [{ read: header(0, 10) }, { write: 1024 }, { write: 1 }]);
      const used = await completions(d);
      assert.equal(used.length, 1);
      assert.equal(used[0]!.len, 1025);
      assert.equal(used[0]!.data[1024], 0, 'status OK');
      assert.deepEqual(new Uint8Array(used[0]!.data.subarray(0, 1024)), data);
      assert.equal(d.lines.length, 0, d.lines.join('\n'));
    } finally {
      await closeImage(node);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
