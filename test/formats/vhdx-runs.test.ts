/**
 * VHDX writes allocate runs of blocks at once and concurrently: a write over
 * several new blocks with partial blocks at both ends, one that starts in a
 * stored block and runs on into new ones, writes made together whose bytes are
 * disjoint but whose new blocks are shared (the later ones write into the place
 * the first one got), and the same on a fixed image whose ZERO blocks keep
 * places holding old bytes (the allocating write zeroes around its bytes, and
 * the writes sharing the block must not be zeroed by it). qemu-img checks and
 * compares the results; tsemu reads them back as qemu-img does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { closeImage, openImage } from '../../src/block/open.js';
import { createImage } from '../../src/block/ops/create.js';
import { FileNode } from '../../src/block/protocols/file.js';
import { payloadIndex } from '../../src/block/formats/vhdx/bat.js';
import { readVhdx } from '../../src/block/formats/vhdx/node.js';
import { mustRun, qemuImg, requirePeer, scratchDir } from '../helpers/peers.js';
import { patternBytes } from '../helpers/pattern.js';
import { type Expected, qemuAgrees, tsemuReadsAsQemu } from './support.js';

const MiB = 1 << 20;
const SIZE = 12 * MiB;

interface Write {
  offset: number;
  length: number;
}

/** Makes the writes of each group together (groups one after another), then flushes; returns the expected content. */
async function writeGroups(file: string, groups: readonly Write[][], seed: number): Promise<Expected> {
  const expected: Expected = { size: SIZE, pieces: [] };
  const img = await openImage(file);
  try {
    let seq = 0;
    for (const group of groups) {
      const data = group.map((w) => patternBytes(seed, seq++, w.length));
      await Promise.all(group.map((w, i) => img.write(w.offset, data[i]!)));
      group.forEach((w, i) => expected.pieces.push({ offset: w.offset, data: data[i]! }));
    }
    await img.flush();
  } finally {
    await closeImage(img);
  }
  return expected;
}

test('vhdx: runs of new blocks, stored then new, concurrent writers sharing new blocks', async () => {
  requirePeer('qemu-img');
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'd.vhdx');
    await mustRun(qemuImg(['create', '-q', '-f', 'vhdx', '-o', 'block_size=1M', file, String(SIZE)]), 'qemu-img create');
    const expected = await writeGroups(file, [
      [{ offset: MiB / 2, length: 3 * MiB }], // blocks 0-3, partial at both ends
      [{ offset: 3 * MiB + 10, length: 2 * MiB }], // stored block 3, then new 4 and 5
      [
        // Disjoint bytes, shared new blocks 7 and 9.
        { offset: 6 * MiB + 100, length: MiB + 100 },
        { offset: 7 * MiB + 300, length: 2 * MiB + 5 },
        { offset: 9 * MiB + 1000, length: 20 },
        // Eight writes into new block 11.
        ...Array.from({ length: 8 }, (_, k) => ({ offset: 11 * MiB + k * 128 * 1024 + 7, length: 1000 })),
      ],
    ], 31);
    await qemuAgrees(file, 'vhdx', expected, dir);
    await tsemuReadsAsQemu(file, 'vhdx', dir);
  } finally {
    await cleanup();
  }
});

test('vhdx: a fixed image stores ZERO blocks in their kept places, zeroing old bytes around concurrent writers', async () => {
  requirePeer('qemu-img');
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'f.vhdx');
    await createImage({ filename: file, format: 'vhdx', size: String(SIZE), options: ['subformat=fixed,block_size=1M,block_state_zero=on'] });
    // Old bytes in every kept place: they must never show through.
    const raw = await FileNode.open(file, {});
    try {
      const parts = await readVhdx(raw, true);
      for (let block = 0; block < SIZE / MiB; block++) {
        const kept = parts.table.offset(payloadIndex(parts.geometry, block));
        assert.ok(kept > 0, `block ${block} keeps a place`);
        await raw.write(kept, new Uint8Array(MiB).fill(0xa5));
      }
    } finally {
      await raw.close();
    }
    const expected = await writeGroups(file, [
      [{ offset: MiB + 100, length: 200 }, { offset: MiB + 500 * 1024, length: 300 }, { offset: 2 * MiB - 10, length: 20 }],
      [{ offset: 4 * MiB, length: 2 * MiB }, { offset: 6 * MiB + 4096, length: 4096 }],
    ], 37);
    await qemuAgrees(file, 'vhdx', expected, dir);
    await tsemuReadsAsQemu(file, 'vhdx', dir);
  } finally {
    await cleanup();
  }
});
