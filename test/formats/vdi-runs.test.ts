/**
 * VDI writes allocate a run of blocks at a time: a write over several blocks with
 * partial blocks at both ends, one that starts in a stored block and runs on into
 * new ones, and writes made together whose bytes are disjoint but whose blocks are
 * shared (the later allocation finds some blocks stored and writes in place).
 * qemu-img checks and compares the result; tsemu reads it back as qemu-img does.
 */
import { test } from 'node:test';
import path from 'node:path';
import { closeImage, openImage } from '../../src/block/open.js';
import { mustRun, qemuImg, requirePeer, scratchDir } from '../helpers/peers.js';
import { patternBytes } from '../helpers/pattern.js';
import { type Expected, qemuAgrees, tsemuReadsAsQemu } from './support.js';

const MiB = 1 << 20;
const SIZE = 12 * MiB;

test('vdi: runs of new blocks, stored then new, concurrent writers sharing blocks', async () => {
  requirePeer('qemu-img');
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'd.vdi');
    await mustRun(qemuImg(['create', '-q', '-f', 'vdi', file, String(SIZE)]), 'qemu-img create');
    const expected: Expected = { size: SIZE, pieces: [] };
    const img = await openImage(file);
    try {
      const writes = [
        { offset: MiB / 2, length: 3 * MiB }, // blocks 0-3, partial at both ends
        { offset: 3 * MiB + 10, length: 2 * MiB }, // stored block 3, then new 4 and 5
        // Made together: disjoint bytes, shared blocks 7 and 9.
        { offset: 6 * MiB + 100, length: MiB + 100 },
        { offset: 7 * MiB + 300, length: 2 * MiB + 5 },
        { offset: 9 * MiB + 1000, length: 20 },
      ];
      const data = writes.map((w, seq) => patternBytes(29, seq, w.length));
      await img.write(writes[0]!.offset, data[0]!);
      await img.write(writes[1]!.offset, data[1]!);
      await Promise.all(writes.slice(2).map((w, i) => img.write(w.offset, data[i + 2]!)));
      await img.flush();
      writes.forEach((w, i) => expected.pieces.push({ offset: w.offset, data: data[i]! }));
    } finally {
      await closeImage(img);
    }
    await qemuAgrees(file, 'vdi', expected, dir);
    await tsemuReadsAsQemu(file, 'vdi', dir);
  } finally {
    await cleanup();
  }
});
