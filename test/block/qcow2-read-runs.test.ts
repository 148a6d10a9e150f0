/**
 * readRuns (optional BlockNode method) on qcow2, raw and the file protocol: the same
 * bytes as one read() per range, over data, zero, compressed and unallocated
 * clusters with a backing file, on every qcow2 layout; data clusters that follow
 * each other in the image file are read with one file request.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { truncate } from 'node:fs/promises';
import path from 'node:path';
import { createQcow2 } from '../../src/block/formats/qcow2/create.js';
import type { Qcow2Node } from '../../src/block/formats/qcow2/node.js';
import { closeImage, openImage } from '../../src/block/open.js';
import { FileNode } from '../../src/block/protocols/file.js';
import { scratchDir } from '../helpers/peers.js';
import { makeRng } from '../helpers/pattern.js';

const SIZE = 2 * 2 ** 20;
const CONFIGS: Array<[string, Record<string, string>]> = [
  ['v3 64k', {}],
  ['v2 4k', { compat: '0.10', cluster_size: '4k' }],
  ['v3 64k extended_l2', { extended_l2: 'on' }],
];

function filled(length: number, seed: number): Uint8Array {
  const b = new Uint8Array(length);
  for (let i = 0; i < length; i++) b[i] = ((i * 31 + seed * 7) & 255) | 1;
  return b;
}

test('readRuns reads what one read() per range reads, joining clusters stored one after another', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    for (const [name, opts] of CONFIGS) {
      const slug = name.replace(/[^a-z0-9]+/gi, '_');
      const base = path.join(dir, `base-${slug}.qcow2`);
      const top = path.join(dir, `top-${slug}.qcow2`);
      await createQcow2({ filename: base, size: SIZE, options: new Map(Object.entries(opts)) });
      const b = await openImage(base);
      await b.write(0, filled(SIZE, 1));
      await closeImage(b);
      await createQcow2({
        filename: top,
        size: SIZE,
        options: new Map(Object.entries({ ...opts, backing_file: base, backing_fmt: 'qcow2' })),
      });
      const img = (await openImage(top)) as Qcow2Node;
      // Data in one stretch (host clusters one after another), then zero, compressed and untouched clusters.
      await img.write(0, filled(512 * 1024, 2));
      await img.writeZeroes(512 * 1024, 128 * 1024);
      await img.writeCompressed!(1024 * 1024, filled(64 * 1024, 3));
      await img.write(1536 * 1024 + 1000, filled(70000, 4));

      let fileRequests = 0;
      const fileRuns = img.file.readRuns!.bind(img.file);
      img.file.readRuns = async (runs) => {
        fileRequests++;
        return fileRuns(runs);
      };
      // Two parts of the first stretch with a gap: one file request.
      const parts = [
        { offset: 4096, buf: new Uint8Array(100000) },
        { offset: 300000, buf: new Uint8Array(150000) },
      ];
      await img.readRuns(parts);
      assert.equal(fileRequests, 1, `${name}: file requests`);

      const rng = makeRng(name.length);
      for (let round = 0; round < 20; round++) {
        const runs: Array<{ offset: number; buf: Uint8Array }> = [];
        for (let at = rng.int(0, 70000); at < SIZE && runs.length < 6;) {
          const len = Math.min(SIZE - at, rng.int(1, 300000));
          runs.push({ offset: at, buf: new Uint8Array(len).fill(0xee) });
          at += len + rng.int(0, 150000);
        }
        await img.readRuns(runs);
        for (const r of runs) {
          const want = new Uint8Array(r.buf.length);
          await img.read(r.offset, want);
          assert.deepEqual(r.buf, want, `${name}: round ${round}, ${r.buf.length} bytes at ${r.offset}`);
        }
      }
      await assert.rejects(img.readRuns([{ offset: SIZE - 10, buf: new Uint8Array(20) }]));
      await closeImage(img);
    }
  } finally {
    await cleanup();
  }
});

test('file and raw readRuns: adjacent ranges in one request, the same bytes as read()', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'f.raw');
    const node = await FileNode.open(file, { create: true });
    await node.truncate(1 << 20);
    await node.write(0, filled(1 << 20, 5));
    const runs = [
      { offset: 1000, buf: new Uint8Array(5000) },
      { offset: 6000, buf: new Uint8Array(7000) },
      { offset: 500000, buf: new Uint8Array(3) },
      { offset: 500003, buf: new Uint8Array(60000) },
    ];
    await node.readRuns(runs);
    for (const r of runs) {
      const want = new Uint8Array(r.buf.length);
      await node.read(r.offset, want);
      assert.deepEqual(r.buf, want);
    }
    await assert.rejects(node.readRuns([{ offset: (1 << 20) - 1, buf: new Uint8Array(2) }]));
    await node.close();
    // The raw format hands them to the file as they are.
    const raw = await openImage(file, { format: 'raw', readOnly: true });
    const again = runs.map((r) => ({ offset: r.offset, buf: new Uint8Array(r.buf.length) }));
    await raw.readRuns!(again);
    assert.deepEqual(again, runs);
    await assert.rejects(raw.readRuns!([{ offset: (1 << 20) - 1, buf: new Uint8Array(2) }]));
    await closeImage(raw);
  } finally {
    await cleanup();
  }
});

test('file readRuns: a preadv cut short by a file that shrank under it reads the rest as zeroes', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'f.raw');
    const node = await FileNode.open(file, { create: true });
    await node.truncate(1 << 16);
    await node.write(0, filled(1 << 16, 7));
    await truncate(file, 8000);
    const runs = [
      { offset: 1000, buf: new Uint8Array(5000).fill(0xee) },
      { offset: 6000, buf: new Uint8Array(7000).fill(0xee) },
    ];
    await node.readRuns(runs);
    const before = filled(1 << 16, 7);
    const second = new Uint8Array(7000);
    second.set(before.subarray(6000, 8000));
    assert.deepEqual(runs[0]!.buf, before.subarray(1000, 6000));
    assert.deepEqual(runs[1]!.buf, second);
    await node.close();
  } finally {
    await cleanup();
  }
});
