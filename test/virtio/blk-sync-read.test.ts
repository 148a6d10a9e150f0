/**
 * virtio-blk's synchronous reads (BlockNode.readCachedSync): a read the node
 * serves at once is complete when the kick returns, with the right bytes in
 * the guest's buffers however the driver frames them (the status byte alone
 * or at the end of the last data buffer), on a qcow2 image opened as drives
 * are; a read the node declines (after scribbling on the buffers) falls back
 * to read() and the guest still gets exactly the disk's bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import type { BlockNode } from '../../src/block/node.js';
import { closeImage, openImage } from '../../src/block/open.js';
import { createImage } from '../../src/block/ops/create.js';
import { VirtioBlk } from '../../src/emulator/virtio/blk.js';
import { patternBytes } from '../helpers/pattern.js';
import { scratchDir } from '../helpers/peers.js';
import { type Buffer, TestDriver } from './fake-driver.js';

const T_IN = 0;
const S_OK = 0;

function inHeader(sector: number): Uint8Array {
  const h = new Uint8Array(16);
  const dv = new DataView(h.buffer);
  dv.setUint32(0, T_IN, true);
  dv.setUint32(8, sector, true);
  return h;
}

function device(node: BlockNode): TestDriver {
  const d = new TestDriver(new VirtioBlk({ node, id: 'disk0', readOnly: false, writeCache: true, discard: 'unmap', log: () => {} }));
  d.init({ size: 16 });
  return d;
}

/** Sends an IN request and waits (a few timer turns at most) for its used entry; `atOnce`: whether it was used when the kick returned. */
async function readRequest(d: TestDriver, buffers: readonly Buffer[]): Promise<{ atOnce: boolean; status: number; data: Uint8Array; len: number }> {
  d.add(0, buffers);
  d.kick(0);
  let used = d.takeUsed(0);
  const atOnce = used.length > 0;
  while (used.length === 0) {
    await new Promise((resolve) => setTimeout(resolve, 1));
    used = d.takeUsed(0);
  }
  const { writable, len } = used[0]!;
  return { atOnce, status: writable[writable.length - 1]!, data: writable.subarray(0, len - 1), len };
}

test('a read served at once completes inside the kick with the disk bytes in the guest, however the driver frames it', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'disk.qcow2');
    await createImage({ filename: file, format: 'qcow2', size: '1M', options: [] });
    const bytes = patternBytes(5, 0, 1 << 20);
    const w = await openImage(file);
    await w.write(0, bytes);
    await closeImage(w);
    const node = await openImage(file, { inlineCachedReads: 'always' });
    try {
      const d = device(node);
      const first = await readRequest(d, [{ read: inHeader(0) }, { write: 4096 }, { write: 1 }]);
      assert.equal(first.status, S_OK);
      assert.ok(!first.atOnce, 'the first read waits: its L2 table is not cached yet');
      assert.deepEqual(first.data, bytes.subarray(0, 4096), 'the first read');
      const framings: Array<[string, number, Buffer[]]> = [
        ['status byte alone', 16, [{ write: 1024 }, { write: 64512 }, { write: 1 }]],
        ['status byte after the data', 300, [{ write: 4096 }, { write: 8193 }]],
        ['one buffer for data and status', 1000, [{ write: 65537 }]],
      ];
      for (const [what, sector, writable] of framings) {
        const r = await readRequest(d, [{ read: inHeader(sector) }, ...writable]);
        const length = r.len - 1;
        assert.ok(r.atOnce, `${what}: used before the kick returned`);
        assert.equal(r.status, S_OK, what);
        assert.equal(length, writable.reduce((n, b) => n + ('write' in b ? b.write : 0), 0) - 1, what);
        assert.deepEqual(r.data, bytes.subarray(sector * 512, sector * 512 + length), what);
      }
    } finally {
      await closeImage(node);
    }
  } finally {
    await cleanup();
  }
});

test('a read the node declines falls back to read() and returns the right bytes', async () => {
  const disk = patternBytes(6, 0, 1 << 20);
  let asked = 0;
  const node = {
    driver: 'mem',
    filename: 'mem',
    granularity: 512,
    size: () => disk.length,
    readCachedSync(_offset: number, parts: readonly Uint8Array[]): boolean {
      asked++;
      for (const p of parts) p.fill(0xee);
      return false;
    },
    async read(offset: number, buf: Uint8Array): Promise<void> {
      await new Promise((resolve) => setTimeout(resolve, 1));
      buf.set(disk.subarray(offset, offset + buf.length));
    },
  };
  const d = device(node as unknown as BlockNode);
  const r = await readRequest(d, [{ read: inHeader(7) }, { write: 3072 }, { write: 1025 }]);
  assert.equal(asked, 1, 'the node was asked first');
  assert.ok(!r.atOnce, 'completed by the async path');
  assert.equal(r.status, S_OK);
  assert.equal(r.len, 4097);
  assert.deepEqual(r.data, disk.subarray(7 * 512, 7 * 512 + 4096));
});
