/**
 * virtio-blk on block-layer nodes, driven through virtio-mmio with a fake
 * guest RAM: the configuration space, IN/OUT on a real qcow2 image with the
 * driver's framing split anywhere, FLUSH, GET_ID, DISCARD and WRITE_ZEROES,
 * the IOERR and UNSUPP cases, read-only drives, write-through, requests that
 * complete out of order, a flush that waits for the writes before it, and a
 * request without header or status byte putting the device in needs-reset.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BlockNode } from '../../src/block/node.js';
import { closeImage, openImage } from '../../src/block/open.js';
import { createImage } from '../../src/block/ops/create.js';
import { VirtioBlk, type VirtioBlkOptions } from '../../src/emulator/virtio/blk.js';
import { STATUS } from '../../src/emulator/virtio/spec.js';
import { type Buffer, TestDriver } from './fake-driver.js';

const T = { IN: 0, OUT: 1, FLUSH: 4, GET_ID: 8, DISCARD: 11, WRITE_ZEROES: 13, BOGUS: 99 };
const S = { OK: 0, IOERR: 1, UNSUPP: 2 };

function header(type: number, sector: number): Uint8Array {
  const h = new Uint8Array(16);
  const dv = new DataView(h.buffer);
  dv.setUint32(0, type, true);
  dv.setUint32(8, sector, true);
  return h;
}

function segment(sector: number, count: number, flags = 0): Uint8Array {
  const s = new Uint8Array(16);
  const dv = new DataView(s.buffer);
  dv.setUint32(0, sector, true);
  dv.setUint32(8, count, true);
  dv.setUint32(12, flags, true);
  return s;
}

/** An in-memory node whose operations can be held until released, recording the order they finish in. */
class GatedNode {
  readonly driver = 'mem';
  readonly filename = 'mem';
  readonly granularity = 512;
  readonly bytes = new Uint8Array(1 << 20);
  readonly events: string[] = [];
  hold = false;
  private readonly held: (() => void)[] = [];
  size(): number {
    return this.bytes.length;
  }
  private async gate(event: string): Promise<void> {
    if (this.hold) await new Promise<void>((resolve) => this.held.push(resolve));
    this.events.push(event);
  }
  /** Releases held operations, the last one first. */
  release(): void {
    this.hold = false;
    for (const resolve of this.held.splice(0).reverse()) resolve();
  }
  async read(offset: number, buf: Uint8Array): Promise<void> {
    await this.gate(`read ${offset}`);
    buf.set(this.bytes.subarray(offset, offset + buf.length));
  }
  async write(offset: number, buf: Uint8Array): Promise<void> {
    const copy = buf.slice();
    await this.gate(`write ${offset}`);
    this.bytes.set(copy, offset);
  }
  async flush(): Promise<void> {
    await this.gate('flush');
  }
}

async function withDevice(
  options: Partial<VirtioBlkOptions> & { node: BlockNode },
  body: (d: TestDriver, lines: string[]) => Promise<void>,
): Promise<void> {
  const lines: string[] = [];
  const device = new VirtioBlk({ id: 'disk0', readOnly: false, writeCache: true, discard: 'unmap', log: (l) => lines.push(l), ...options });
  const d = new TestDriver(device);
  d.init({ size: 16 });
  await body(d, lines);
}

/** Sends one request and waits until it is used; returns its status and data. */
async function request(d: TestDriver, buffers: readonly Buffer[]): Promise<{ status: number; data: Uint8Array; len: number }> {
  const head = d.add(0, buffers);
  d.kick(0);
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 1));
    const used = d.takeUsed(0);
    if (used.length > 0) {
      assert.equal(used[0]!.id, head);
      const { writable, len } = used[0]!;
      return { status: writable[writable.length - 1]!, data: writable.subarray(0, len - 1), len };
    }
    assert.equal(d.reg(0x070) & STATUS.DEVICE_NEEDS_RESET, 0, d.lines.join('\n'));
  }
}

async function withQcow2(body: (node: BlockNode, file: string) => Promise<void>, opts: { readOnly?: boolean } = {}): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tsemu-virtio-blk-'));
  const file = path.join(dir, 'disk.qcow2');
  try {
    await createImage({ filename: file, format: 'qcow2', size: '1M', options: [] });
    const node = await openImage(file, { readOnly: opts.readOnly });
    try {
      await body(node, file);
    } finally {
      await closeImage(node);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('configuration space: capacity, size_max, seg_max, blk_size, writeback, discard limits', async () => {
  await withQcow2(async (node) => {
    await withDevice({ node }, async (d) => {
      assert.equal(d.mmio.read(0x100, 4), 2048, 'capacity in sectors (low word)');
      assert.equal(d.mmio.read(0x104, 4), 0);
      assert.equal(d.mmio.read(0x108, 4), 1 << 20, 'size_max');
      assert.equal(d.mmio.read(0x10c, 4), 254, 'seg_max');
      assert.equal(d.mmio.read(0x114, 4), 512, 'blk_size');
      assert.equal(d.mmio.read(0x120, 1), 1, 'writeback');
      assert.equal(d.mmio.read(0x12c, 4), 65536 / 512, 'discard alignment: the cluster');
    });
  });
});

test('IN and OUT on a qcow2 image, header and data split across descriptors any way', async () => {
  await withQcow2(async (node) => {
    await withDevice({ node }, async (d) => {
      const data = new Uint8Array(1536).map((_, i) => (i * 7) & 0xff);
      const h = header(T.OUT, 3);
      const out = await request(d, [{ read: h.subarray(0, 5) }, { read: Uint8Array.of(...h.subarray(5), ...data.subarray(0, 100)) }, { read: data.subarray(100) }, { write: 1 }]);
      assert.equal(out.status, S.OK);
      assert.equal(out.len, 1);
      const back = await request(d, [{ read: header(T.IN, 3) }, { write: 1000 }, { write: 537 }]);
      assert.equal(back.status, S.OK);
      assert.equal(back.len, 1537);
      assert.deepEqual(back.data, data);
      const trailing = await request(d, [{ read: header(T.IN, 3) }, { write: 1537 }, { write: 0 }]);
      assert.equal(trailing.len, 1537, 'a trailing empty buffer: the status byte is the last byte before it');
      assert.deepEqual(trailing.data, data);
      const check = new Uint8Array(1536);
      await node.read(3 * 512, check);
      assert.deepEqual(check, data, 'the data is in the image');
    });
  });
});

test('FLUSH, GET_ID, DISCARD, WRITE_ZEROES and the IOERR/UNSUPP answers', async () => {
  await withQcow2(async (node) => {
    await withDevice({ node, serial: 'tsemu-disk-serial-number-long' }, async (d) => {
      assert.equal((await request(d, [{ read: header(T.FLUSH, 0) }, { write: 1 }])).status, S.OK);
      const id = await request(d, [{ read: header(T.GET_ID, 0) }, { write: 20 }, { write: 1 }]);
      assert.equal(id.status, S.OK);
      assert.equal(Buffer.from(id.data).toString(), 'tsemu-disk-serial-nu');
      await request(d, [{ read: header(T.OUT, 0) }, { read: new Uint8Array(4096).fill(9) }, { write: 1 }]);
      const zero = await request(d, [{ read: header(T.WRITE_ZEROES, 0) }, { read: segment(0, 4, 1) }, { write: 1 }]);
      assert.equal(zero.status, S.OK);
      const after = await request(d, [{ read: header(T.IN, 0) }, { write: 4096 }, { write: 1 }]);
      assert.deepEqual([...new Set(after.data.subarray(0, 2048))], [0]);
      assert.deepEqual([...new Set(after.data.subarray(2048))], [9]);
      assert.equal((await request(d, [{ read: header(T.DISCARD, 0) }, { read: segment(0, 128) }, { write: 1 }])).status, S.OK);
      assert.equal((await request(d, [{ read: header(T.DISCARD, 0) }, { read: segment(0, 8, 1) }, { write: 1 }])).status, S.UNSUPP);
      assert.equal((await request(d, [{ read: header(T.IN, 2047) }, { write: 1024 }, { write: 1 }])).status, S.IOERR, 'past the end');
      assert.equal((await request(d, [{ read: header(T.IN, 0) }, { write: 100 }, { write: 1 }])).status, S.IOERR, 'not whole sectors');
      assert.equal((await request(d, [{ read: header(T.WRITE_ZEROES, 0) }, { read: segment(2040, 16) }, { write: 1 }])).status, S.IOERR);
      assert.equal((await request(d, [{ read: header(T.BOGUS, 0) }, { write: 1 }])).status, S.UNSUPP);
    });
  });
});

test('read-only drive: VIRTIO_BLK_F_RO offered, writes answered IOERR, reads served', async () => {
  await withQcow2(async (node) => {
    await withDevice({ node, readOnly: true }, async (d) => {
      d.set(0x014, 0);
      assert.ok(d.reg(0x010) & (1 << 5), 'RO feature');
      assert.equal((await request(d, [{ read: header(T.OUT, 0) }, { read: new Uint8Array(512) }, { write: 1 }])).status, S.IOERR);
      assert.equal((await request(d, [{ read: header(T.DISCARD, 0) }, { read: segment(0, 1) }, { write: 1 }])).status, S.IOERR);
      assert.equal((await request(d, [{ read: header(T.IN, 0) }, { write: 512 }, { write: 1 }])).status, S.OK);
    });
  }, { readOnly: true });
});

test('requests complete out of order; a flush waits for the writes submitted before it', async () => {
  const node = new GatedNode();
  await withDevice({ node: node as unknown as BlockNode }, async (d) => {
    node.hold = true;
    const write = d.add(0, [{ read: header(T.OUT, 8) }, { read: new Uint8Array(512).fill(1) }, { write: 1 }]);
    const read = d.add(0, [{ read: header(T.IN, 0) }, { write: 512 }, { write: 1 }]);
    d.kick(0);
    await d.settle();
    const flush = d.add(0, [{ read: header(T.FLUSH, 0) }, { write: 1 }]);
    d.kick(0);
    await d.settle();
    assert.deepEqual(d.takeUsed(0), [], 'nothing finished while the node holds');
    node.release();
    for (let i = 0; i < 5; i++) await d.settle();
    assert.deepEqual(d.takeUsed(0).map((u) => u.id), [read, write, flush], 'the read finished first');
    assert.deepEqual(node.events, ['read 0', 'write 4096', 'flush']);
  });
});

test('without a write cache every write is flushed before it completes; the guest can turn the cache on (CONFIG_WCE)', async () => {
  const node = new GatedNode();
  await withDevice({ node: node as unknown as BlockNode, writeCache: false }, async (d) => {
    assert.equal(d.mmio.read(0x120, 1), 0);
    await request(d, [{ read: header(T.OUT, 0) }, { read: new Uint8Array(512) }, { write: 1 }]);
    assert.deepEqual(node.events, ['write 0', 'flush']);
    d.mmio.write(0x120, 1, 1);
    assert.equal(d.mmio.read(0x120, 1), 1);
    await request(d, [{ read: header(T.OUT, 0) }, { read: new Uint8Array(512) }, { write: 1 }]);
    assert.deepEqual(node.events, ['write 0', 'flush', 'write 0']);
  });
});

test('a request without a header or without a status byte puts the device in needs-reset', async () => {
  for (const buffers of [[{ read: new Uint8Array(8) }, { write: 1 }], [{ read: header(T.IN, 0) }]] as Buffer[][]) {
    const node = new GatedNode();
    await withDevice({ node: node as unknown as BlockNode }, async (d) => {
      d.add(0, buffers);
      d.kick(0);
      await d.settle();
      assert.ok(d.reg(0x070) & STATUS.DEVICE_NEEDS_RESET);
      assert.match(d.lines.join('\n'), /virtio-blk .*: request 0 has no (header|status byte); the device needs a reset/);
    });
  }
});

test('a read still in flight when the driver resets the device never reaches the guest', async () => {
  const node = new GatedNode();
  node.bytes.fill(0x5a);
  await withDevice({ node: node as unknown as BlockNode }, async (d) => {
    node.hold = true;
    d.add(0, [{ read: header(T.IN, 0) }, { write: 4096 }, { write: 1 }]);
    d.kick(0);
    await d.settle();
    d.set(0x070, 0);
    node.release();
    for (let i = 0; i < 5; i++) await d.settle();
    assert.deepEqual(node.events, ['read 0'], 'the read did finish on the host');
    assert.deepEqual(d.takeUsed(0), [], 'nothing was used');
    assert.ok(!d.ram.bytes.includes(0x5a), 'no byte of the read landed in guest RAM');
  });
});

test('a failed read answers IOERR with a log line and none of its bytes; the next reads get their own data', async () => {
  const node = new GatedNode();
  node.bytes.forEach((_, i) => (node.bytes[i] = (i >> 9) & 0xff));
  let fail = true;
  const buffers: Uint8Array[] = [];
  const failing = Object.assign(Object.create(node) as GatedNode, {
    async read(offset: number, buf: Uint8Array): Promise<void> {
      buffers.push(buf);
      if (!fail) return node.read(offset, buf);
      buf.fill(0x77);
      throw new Error('medium error');
    },
  });
  await withDevice({ node: failing as unknown as BlockNode }, async (d, lines) => {
    const bad = await request(d, [{ read: header(T.IN, 4) }, { write: 4096 }, { write: 1 }]);
    assert.equal(bad.status, S.IOERR);
    assert.equal(bad.len, 1, 'only the status byte');
    assert.ok(!bad.data.includes(0x77));
    assert.match(lines.join('\n'), /virtio-blk disk0: read at sector 4 failed: medium error/);
    fail = false;
    for (const [sector, bytes] of [[8, 4096], [3, 512], [20, 1024]] as const) {
      const good = await request(d, [{ read: header(T.IN, sector) }, { write: bytes }, { write: 1 }]);
      assert.equal(good.status, S.OK);
      assert.equal(good.len, bytes + 1);
      assert.deepEqual(good.data, node.bytes.subarray(sector * 512, sector * 512 + bytes), `sector ${sector}`);
    }
    assert.ok(!buffers.slice(1).some((b) => b.buffer === buffers[0]!.buffer), 'the failed read\'s host buffer was not reused');
  });
});
