import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { createQcow2 } from '../../src/block/formats/qcow2/create.js';
import type { Qcow2Node } from '../../src/block/formats/qcow2/node.js';
import { closeImage, openImage } from '../../src/block/open.js';
import { qemuCheckAndCompare } from '../helpers/images.js';
import { scratchDir } from '../helpers/peers.js';

const SIZE = 4 * 2 ** 20;

function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff;
    return s;
  };
}

function pattern(length: number, seed: number): Uint8Array {
  const r = rng(seed);
  const b = new Uint8Array(length);
  for (let i = 0; i < length; i += 97) b[i] = (r() & 255) | 1;
  return b;
}

const CONFIGS: Array<[string, Record<string, string>]> = [
  ['v3 64k', {}],
  ['v2 4k', { compat: '0.10', cluster_size: '4k' }],
  ['v3 64k extended_l2', { extended_l2: 'on' }],
  ['v3 lazy_refcounts', { lazy_refcounts: 'on' }],
  ['v3 512 refcount_bits=1', { cluster_size: '512', refcount_bits: '1' }],
];

test('concurrent writes, zeroing, discards and flushes all land (fresh, in-place and partial clusters)', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    for (const [name, opts] of CONFIGS) {
      const file = path.join(dir, `${name.replace(/[^a-z0-9]+/gi, '_')}.qcow2`);
      await createQcow2({ filename: file, size: SIZE, options: new Map(Object.entries(opts)) });
      const ref = new Uint8Array(SIZE);
      const img = await openImage(file);
      const r = rng(name.length * 31);
      for (let round = 0; round < 3; round++) {
        // Disjoint slots, so the expected content does not depend on completion order.
        const slots = 16;
        const slot = SIZE / slots;
        const ops: Promise<void>[] = [];
        for (let i = 0; i < slots; i++) {
          const off = i * slot + (r() % (slot / 2));
          const len = 1 + (r() % (slot / 2 - 1));
          const kind = r() % 8;
          if (kind === 0) {
            ops.push(img.writeZeroes(off, len));
            ref.fill(0, off, off + len);
          } else if (kind === 1) {
            ops.push(img.flush());
          } else {
            const data = pattern(len, round * 1000 + i);
            ops.push(img.write(off, data));
            ref.set(data, off);
          }
        }
        await Promise.all(ops);
      }
      const back = new Uint8Array(SIZE);
      await img.read(0, back);
      assert.ok(Buffer.from(back).equals(Buffer.from(ref)), `${name}: read back`);
      await closeImage(img);
      await qemuCheckAndCompare(file, ref, dir);
    }
  } finally {
    await cleanup();
  }
});

test('overlapping concurrent writes apply in the order they were issued', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'overlap.qcow2');
    await createQcow2({ filename: file, size: SIZE, options: new Map() });
    const img = await openImage(file);
    const ref = new Uint8Array(SIZE);
    const ops: Promise<void>[] = [];
    for (let i = 0; i < 12; i++) {
      const off = 65536 - 4096 + i * 1000;
      const data = pattern(70000, i).fill(i + 1, 0, 1);
      ops.push(img.write(off, data));
      ref.set(data, off);
    }
    await Promise.all(ops);
    const back = new Uint8Array(SIZE);
    await img.read(0, back);
    assert.ok(Buffer.from(back).equals(Buffer.from(ref)));
    await closeImage(img);
    await qemuCheckAndCompare(file, ref, dir);
  } finally {
    await cleanup();
  }
});

test('fresh clusters cost one data write each: refcount blocks are written with the L2 tables, not per allocation', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'count.qcow2');
    await createQcow2({ filename: file, size: SIZE, options: new Map() });
    const img = (await openImage(file)) as Qcow2Node;
    const writeGrow = img.file.writeGrow.bind(img.file);
    let writes = 0;
    img.file.writeGrow = async (offset, buf) => {
      writes++;
      return writeGrow(offset, buf);
    };
    const clusters = 32;
    const ref = new Uint8Array(SIZE);
    for (let i = 0; i < clusters; i++) {
      // Every other cluster, so no two allocations could share a request.
      const data = pattern(65536, i);
      await img.write(i * 2 * 65536, data);
      ref.set(data, i * 2 * 65536);
    }
    // One L2 table (allocated and written once, after its refcount) on top of the data.
    assert.ok(writes <= clusters + 3, `${writes} writes for ${clusters} fresh clusters`);
    await closeImage(img);
    await qemuCheckAndCompare(file, ref, dir);
  } finally {
    await cleanup();
  }
});

test('one fresh run spanning many refcount blocks counts every cluster once (512-byte clusters, 64-bit refcounts)', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    // 64 refcount entries per block: a 1 MiB write allocates 2048 clusters across 32 or more blocks at once.
    const file = path.join(dir, 'blocks.qcow2');
    await createQcow2({ filename: file, size: SIZE, options: new Map([['cluster_size', '512'], ['refcount_bits', '64']]) });
    const img = await openImage(file);
    const ref = new Uint8Array(SIZE);
    const data = pattern(2 ** 20, 5);
    await img.write(3 * 512, data);
    ref.set(data, 3 * 512);
    await closeImage(img);
    await qemuCheckAndCompare(file, ref, dir);
  } finally {
    await cleanup();
  }
});

test('writeRuns: ranges of fresh, in-place and partial clusters land as one write() each would, in one host request per host run', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    for (const [name, opts] of CONFIGS) {
      const file = path.join(dir, `runs-${name.replace(/[^a-z0-9]+/gi, '_')}.qcow2`);
      await createQcow2({ filename: file, size: SIZE, options: new Map(Object.entries(opts)) });
      const img = (await openImage(file)) as Qcow2Node;
      const ref = new Uint8Array(SIZE);
      const r = rng(name.length);
      for (let round = 0; round < 12; round++) {
        const runs: Array<{ offset: number; buf: Uint8Array }> = [];
        for (let at = r() % 70000; at < SIZE && runs.length < 6;) {
          const len = Math.min(SIZE - at, 1 + (r() % 200000));
          runs.push({ offset: at, buf: pattern(len, round * 10 + runs.length) });
          at += len + (r() % 150000);
        }
        const other = r() % (SIZE - 4096);
        const extra = pattern(4096, 1000 + round);
        // A plain write issued first over the same area is ordered before the runs where they overlap.
        const done = Promise.all([img.write(other, extra), img.writeRuns(runs)]);
        ref.set(extra, other);
        for (const run of runs) ref.set(run.buf, run.offset);
        await done;
      }
      await assert.rejects(img.writeRuns([{ offset: 8192, buf: new Uint8Array(10) }, { offset: 0, buf: new Uint8Array(10) }]), /ascending, disjoint/);
      await closeImage(img);
      await qemuCheckAndCompare(file, ref, dir);
    }
  } finally {
    await cleanup();
  }
});

test('compressed clusters are packed back to back across cluster boundaries, written in one request per write', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    for (const [name, opts] of [['zlib', {}], ['zstd', { compression_type: 'zstd' }], ['refcount_bits=1', { refcount_bits: '1' }]] as const) {
      const file = path.join(dir, `packed-${name.replace(/[^a-z0-9]+/gi, '_')}.qcow2`);
      await createQcow2({ filename: file, size: SIZE, options: new Map(Object.entries(opts)) });
      const img = (await openImage(file)) as Qcow2Node;
      let requests = 0;
      const writevGrow = img.file.writevGrow.bind(img.file);
      img.file.writevGrow = async (offset, parts) => {
        requests++;
        return writevGrow(offset, parts);
      };
      const before = img.file.size();
      // Clusters that shrink to a bit more than half: with packing, 3 take 2 clusters' room.
      const clusters = 12;
      const data = new Uint8Array(clusters * 65536);
      for (let i = 0; i < data.length; i++) data[i] = i % 2 ? (i * 2654435761) >>> 27 : 0;
      await img.writeCompressed(0, data);
      const grown = img.file.size() - before;
      await closeImage(img);
      // With 1-bit refcounts a cluster holds one piece: nothing can be packed.
      assert.equal(requests, name === 'refcount_bits=1' ? clusters : 1, `${name}: data write requests`);
      if (name !== 'refcount_bits=1') {
        assert.ok(grown < clusters * 65536 * 0.8, `${name}: ${grown} bytes for ${clusters} compressed clusters`);
      }
      const ref = new Uint8Array(SIZE);
      ref.set(data);
      await qemuCheckAndCompare(file, ref, dir);
    }
  } finally {
    await cleanup();
  }
});
