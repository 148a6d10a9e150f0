/**
 * Reads of stored bytes (stored-reads.ts, used by vhdx and vdi): holes of a host
 * file (in pieces of 64 KiB or more) and bytes past its end read as zeroes
 * without a read of them, data stretches and small pieces read whole; and vhdx
 * and vdi readRuns give what read() gives range by range, on images qemu-img
 * and qemu-io made with sparse blocks, unallocated blocks and blocks stored one
 * after another, which also read as qemu-img reads them. vhdx's copyStatus
 * reports holes and blocks not stored as zeroes while blockStatus keeps
 * qemu-img's all-data view.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { closeImage, openImage } from '../../src/block/open.js';
import { FileNode } from '../../src/block/protocols/file.js';
import type { ProtocolNode } from '../../src/block/protocols/protocol.js';
import { type HostPiece, readStored } from '../../src/block/formats/stored-reads.js';
import { mustRun, qemuImg, qemuIo, requirePeer, scratchDir } from '../helpers/peers.js';
import { describeMismatch, readImageWithQemu } from '../helpers/images.js';
import { makeRng, patternBytes } from '../helpers/pattern.js';

const KiB = 1024;
const MiB = 1 << 20;

/** The parts of a file node readStored uses, recording every byte range it reads. */
function countingFile(file: FileNode, reads: Array<[number, number]>): ProtocolNode {
  const record = (offset: number, buf: Uint8Array): void => void reads.push([offset, offset + buf.length]);
  return {
    driver: file.driver,
    size: () => file.size(),
    blockStatus: (offset: number, length: number) => file.blockStatus(offset, length),
    read: (offset: number, buf: Uint8Array) => {
      record(offset, buf);
      return file.read(offset, buf);
    },
    readRuns: (runs: ReadonlyArray<{ offset: number; buf: Uint8Array }>) => {
      for (const r of runs) record(r.offset, r.buf);
      return file.readRuns(runs);
    },
  } as unknown as ProtocolNode;
}

/** Whether files in `dir` report holes (SEEK_DATA/SEEK_HOLE) at all. */
async function fileSystemHasHoles(dir: string): Promise<boolean> {
  const name = path.join(dir, 'holes-probe');
  const fh = await open(name, 'w');
  await fh.truncate(MiB);
  await fh.close();
  const file = await FileNode.open(name, { readOnly: true });
  try {
    return (await file.blockStatus(0, MiB)).zero;
  } finally {
    await file.close();
  }
}

test('readStored: holes and bytes past the end read as zeroes without a read, data stretches are read', async (t) => {
  const { dir, cleanup } = await scratchDir();
  try {
    const name = path.join(dir, 'sparse');
    const data = [
      { offset: 64 * KiB, bytes: patternBytes(3, 0, 128 * KiB) },
      { offset: MiB + 100, bytes: patternBytes(3, 1, 4900) },
    ];
    const fh = await open(name, 'w');
    await fh.truncate(3 * MiB);
    for (const d of data) await fh.write(d.bytes, 0, d.bytes.length, d.offset);
    await fh.close();
    const expected = new Uint8Array(4 * MiB);
    for (const d of data) expected.set(d.bytes, d.offset);

    const file = await FileNode.open(name, { readOnly: true });
    try {
      const reads: Array<[number, number]> = [];
      const pieces: HostPiece[] = [
        { offset: 0, buf: new Uint8Array(512 * KiB) },
        { offset: MiB - 64 * KiB, buf: new Uint8Array(128 * KiB) },
        { offset: 2 * MiB, buf: new Uint8Array(8 * KiB) }, // small: read whole, hole and all
        { offset: 3 * MiB - 4 * KiB, buf: new Uint8Array(8 * KiB) }, // half past the end
        { offset: 3 * MiB + 4 * KiB, buf: new Uint8Array(4 * KiB) }, // all past the end
      ];
      for (const p of pieces) p.buf.fill(0xee);
      await readStored(countingFile(file, reads), pieces);
      for (const p of pieces) {
        assert.equal(describeMismatch(`piece at ${p.offset}`, p.buf, expected.subarray(p.offset, p.offset + p.buf.length)), null);
      }
      for (const [start, end] of reads) assert.ok(end <= file.size(), `no read past the end (${start}..${end})`);
      if (await fileSystemHasHoles(dir)) {
        // The file system reports holes (at its block size): of large pieces only blocks holding data are read, small ones whole.
        const dataBlocks = [[64 * KiB, 192 * KiB], [MiB, MiB + 8 * KiB], [2 * MiB, 2 * MiB + 8 * KiB], [3 * MiB - 4 * KiB, 3 * MiB]];
        for (const [start, end] of reads) {
          assert.ok(dataBlocks.some(([s, e]) => start >= s! && end <= e!), `read ${start}..${end} lies in a data block`);
        }
      } else {
        t.diagnostic('this file system reports no holes: only the read results were checked');
      }
    } finally {
      await file.close();
    }
  } finally {
    await cleanup();
  }
});

test('vhdx and vdi: readRuns reads what read() reads range by range, and the whole disk as qemu-img does', async () => {
  requirePeer('qemu-img');
  const { dir, cleanup } = await scratchDir();
  try {
    const size = 12 * MiB;
    const images = [
      { format: 'vhdx', options: ['-o', 'block_size=1M'] },
      { format: 'vdi', options: [] },
    ];
    for (const { format, options } of images) {
      const file = path.join(dir, `d.${format}`);
      await mustRun(qemuImg(['create', '-q', '-f', format, ...options, file, String(size)]), 'qemu-img create');
      // Blocks 0-2 stored one after another (vhdx: sparse inside), block 4 alone, block 6 then 5 (stored out of order).
      const writes = ['-P 0x11 4k 8k', '-P 0x22 1M 64k', '-P 0x33 2M+512k 4k', '-P 0x44 4M+100k 1k', '-P 0x55 6M 1M', '-P 0x66 5M+300k 200k'];
      await mustRun(qemuIo(writes.flatMap((w) => ['-c', `write ${w.replace(/(\d+)M\+(\d+)k/g, (_, m, k) => String(Number(m) * MiB + Number(k) * KiB))}`]).concat([file])), 'qemu-io');
      const whole = await readImageWithQemu(file, dir, format);
      const img = await openImage(file, { readOnly: true });
      try {
        const all = new Uint8Array(size);
        await img.read(0, all);
        assert.equal(describeMismatch(`${format}: whole disk`, all, whole), null);
        assert.ok(img.readRuns, `${format} offers readRuns`);
        const rng = makeRng(41);
        for (let round = 0; round < 20; round++) {
          const runs: Array<{ offset: number; buf: Uint8Array }> = [];
          for (let at = rng.int(0, MiB); at < size - 4096 && runs.length < 6;) {
            const length = Math.min(size - at, rng.int(1, 3 * MiB));
            runs.push({ offset: at, buf: new Uint8Array(length).fill(0xee) });
            at += length + rng.int(0, 2 * MiB);
          }
          await img.readRuns!(runs);
          for (const r of runs) {
            const one = new Uint8Array(r.buf.length);
            await img.read(r.offset, one);
            assert.equal(describeMismatch(`${format} round ${round}: run at ${r.offset}`, r.buf, one), null);
            assert.equal(describeMismatch(`${format} round ${round}: run at ${r.offset} vs qemu-img`, r.buf, whole.subarray(r.offset, r.offset + r.buf.length)), null);
          }
        }
      } finally {
        await closeImage(img);
      }
    }
  } finally {
    await cleanup();
  }
});

test('vhdx copyStatus: holes in stored blocks and blocks not stored are zeroes for a copy, while blockStatus (img map) stays as qemu-img has it', async () => {
  requirePeer('qemu-img');
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'c.vhdx');
    await mustRun(qemuImg(['create', '-q', '-f', 'vhdx', '-o', 'block_size=1M', file, String(8 * MiB)]), 'qemu-img create');
    // Block 0: data at 64k..128k, the rest of it a hole; block 1 not stored; block 2 stored whole.
    await mustRun(qemuIo(['-c', 'write -P 0x21 64k 64k', '-c', 'write -P 0x22 2M 1M', file]), 'qemu-io');
    const img = await openImage(file, { readOnly: true });
    try {
      assert.ok(img.copyStatus, 'vhdx offers copyStatus');
      const map: Array<[number, number, boolean]> = [];
      for (let at = 0; at < 3 * MiB;) {
        const st = await img.copyStatus!(at, 3 * MiB - at);
        assert.ok(st.length > 0 && st.allocated && st.data);
        if (st.zero) {
          // Whatever a copy skips reads as zeroes.
          const bytes = new Uint8Array(st.length);
          await img.read(at, bytes);
          assert.ok(bytes.every((b) => b === 0), `zero extent at ${at} reads as zeroes`);
        }
        map.push([at, st.length, st.zero]);
        at += st.length;
      }
      const zeroAt = (offset: number) => map.find(([s, n]) => offset >= s && offset < s + n)![2];
      assert.equal(zeroAt(64 * KiB), false, 'written data is data');
      assert.equal(zeroAt(2 * MiB + 5), false, 'a whole stored block is data');
      assert.equal(zeroAt(MiB + 5), true, 'a block not stored is zero');
      if (await fileSystemHasHoles(dir)) assert.equal(zeroAt(512 * KiB), true, 'the hole after the data in block 0 is zero');
      // blockStatus keeps QEMU's view: all data.
      const st = await img.blockStatus(0, 3 * MiB);
      assert.deepEqual([st.length, st.data, st.zero], [3 * MiB, true, false]);
    } finally {
      await closeImage(img);
    }
  } finally {
    await cleanup();
  }
});
