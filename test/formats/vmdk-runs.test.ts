/**
 * VMDK hosted-sparse writes and reads a run of grains at a time: a write that
 * spans many grains and a grain-table boundary (partial grains at both ends taking
 * the backing image's bytes), concurrent writes into the same unallocated grains
 * (disjoint bytes; the later allocation finds some grains stored and goes grain
 * by grain), and
 * reads of consecutive stored grains. qemu-img checks and compares the result.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { closeImage, openImage } from '../../src/block/open.js';
import { createImage } from '../../src/block/ops/create.js';
import { mustRun, qemuImg, qemuIo, requirePeer, scratchDir } from '../helpers/peers.js';
import { patternBytes } from '../helpers/pattern.js';
import { type Expected, qemuAgrees, tsemuReadsAsQemu } from './support.js';

const MiB = 1 << 20;
const SIZE = 40 * MiB; // two grain tables of 512 64 KiB grains, and a bit

test('vmdk: multi-grain runs across a grain table boundary, over a backing image, with concurrent writers', async () => {
  requirePeer('qemu-img');
  const { dir, cleanup } = await scratchDir();
  try {
    const base = path.join(dir, 'base.vmdk');
    const top = path.join(dir, 'top.vmdk');
    await mustRun(qemuImg(['create', '-q', '-f', 'vmdk', base, String(SIZE)]), 'qemu-img create');
    await mustRun(qemuIo(['-c', `write -P 0x5a 0 ${SIZE}`, base]), 'qemu-io');
    await createImage({ filename: top, format: 'vmdk', options: [], backingFile: 'base.vmdk', backingFormat: 'vmdk' });
    const expected: Expected = { size: SIZE, pieces: [{ offset: 0, data: new Uint8Array(SIZE).fill(0x5a) }] };
    const writes = [
      { offset: 32 * MiB - 100_000, length: 300_000 }, // partial grains at both ends, across tables
      // Made together: disjoint bytes, shared grains (5 MiB, 7 MiB).
      { offset: 4 * MiB + 1000, length: MiB },
      { offset: 5 * MiB + 1000, length: 2 * MiB - 500 },
      { offset: 7 * MiB + 600, length: 20 },
      { offset: 100, length: 200 }, // inside one grain
    ];
    const img = await openImage(top);
    try {
      const data = writes.map((w, seq) => patternBytes(23, seq, w.length));
      await img.write(writes[0]!.offset, data[0]!);
      await Promise.all(writes.slice(1, 4).map((w, i) => img.write(w.offset, data[i + 1]!)));
      await img.write(writes[4]!.offset, data[4]!);
      await img.flush();
      writes.forEach((w, i) => expected.pieces.push({ offset: w.offset, data: data[i]! }));
      const back = new Uint8Array(3 * MiB);
      await img.read(4 * MiB, back);
      assert.deepEqual(back.subarray(1000, 1000 + MiB), data[1]);
      assert.ok(back.subarray(0, 1000).every((b) => b === 0x5a));
    } finally {
      await closeImage(img);
    }
    await qemuAgrees(top, 'vmdk', expected, dir);
    await tsemuReadsAsQemu(top, 'vmdk', dir);
  } finally {
    await cleanup();
  }
});
