/**
 * The file protocol's inline cached reads (protocols/file.ts inlineCachedReads,
 * linux-sys.ts preadCached): read() and readRuns() return the same bytes with
 * 'pool-busy', with 'always' and without, and bytes the page cache does not hold
 * (evicted with posix_fadvise) are left to the pool's reads; readCachedSync
 * (on the file and on a raw image over it) reads a cached range whole at once
 * (into plain or shared memory) and declines with inline reads off or idle, past
 * the end, more buffers than one preadv2 takes (without turning inline reads
 * off), or bytes not cached.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { open, writeFile } from 'node:fs/promises';
import { closeImage, openImage } from '../../src/block/open.js';
import { FileNode } from '../../src/block/protocols/file.js';
import type { InlineCachedReads } from '../../src/block/protocols/protocol.js';
import { preadCached } from '../../src/block/protocols/linux-sys.js';
import { libc } from '../../src/util/libc.js';
import { patternBytes } from '../helpers/pattern.js';
import { scratchDir } from '../helpers/peers.js';

const SIZE = 1 << 20;
const POSIX_FADV_DONTNEED = 4;

/** Drops the file's pages in [offset, offset + length) from the page cache (written back first). */
async function evict(file: string, offset: number, length: number): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    await fh.datasync();
    const { lib } = libc();
    const fadvise = lib.func('int posix_fadvise(int fd, int64_t offset, int64_t len, int advice)') as (
      fd: number,
      offset: number,
      len: number,
      advice: number,
    ) => number;
    assert.equal(fadvise(fh.fd, offset, length, POSIX_FADV_DONTNEED), 0);
  } finally {
    await fh.close();
  }
}

/**
 * Reads through a node opened with `inline`: the whole file with read()s of 64 KiB
 * all issued at once (those issued while the pool is full of the earlier ones read
 * inline), and one readRuns() of joined and separate ranges.
 */
async function readBoth(file: string, inline: InlineCachedReads | undefined): Promise<Uint8Array[]> {
  const node = await FileNode.open(file, { readOnly: true, inlineCachedReads: inline });
  try {
    const whole = new Uint8Array(SIZE);
    const piece = 65536;
    await Promise.all(Array.from({ length: SIZE / piece }, (_, i) => node.read(i * piece, whole.subarray(i * piece, (i + 1) * piece))));
    const parts = [new Uint8Array(4096), new Uint8Array(65536), new Uint8Array(1000), new Uint8Array(SIZE / 2)];
    const offsets = [512, 512 + 4096, 200_000, SIZE / 2];
    await Promise.all([
      node.read(0, new Uint8Array(piece)),
      node.read(piece, new Uint8Array(piece)),
      node.read(2 * piece, new Uint8Array(piece)),
      node.read(3 * piece, new Uint8Array(piece)),
      node.readRuns(parts.map((buf, i) => ({ offset: offsets[i]!, buf }))),
    ]);
    return [whole, ...parts];
  } finally {
    await node.close();
  }
}

test('inline cached reads (always, and while the pool is full) return the bytes pool reads return, for read() and readRuns()', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'a.raw');
    await writeFile(file, patternBytes(7, 0, SIZE));
    assert.deepEqual(await readBoth(file, 'pool-busy'), await readBoth(file, undefined));
    assert.deepEqual(await readBoth(file, 'always'), await readBoth(file, undefined));
  } finally {
    await cleanup();
  }
});

test('bytes the page cache does not hold are read on the pool: preadCached stops there, reads stay whole', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'b.raw');
    const bytes = patternBytes(8, 0, SIZE);
    await writeFile(file, bytes);
    await evict(file, SIZE / 2, SIZE / 2);
    const fh = await open(file, 'r');
    try {
      const buf = new Uint8Array(SIZE);
      const n = preadCached(fh.fd, [buf.subarray(0, SIZE / 4), buf.subarray(SIZE / 4)], 0);
      assert.ok(n >= SIZE / 4 && n < SIZE, `a cached half, then a stop at the evicted half (read ${n} bytes)`);
      assert.deepEqual(buf.subarray(0, n), bytes.subarray(0, n));
    } finally {
      await fh.close();
    }
    await evict(file, 0, SIZE);
    const [whole, ...parts] = await readBoth(file, 'always');
    assert.deepEqual(whole, bytes);
    assert.deepEqual(parts[3], bytes.subarray(SIZE / 2));
  } finally {
    await cleanup();
  }
});

test('readCachedSync: the whole range from the page cache at once, on a file and a raw image over it, or false', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'c.raw');
    const bytes = patternBytes(9, 0, SIZE);
    await writeFile(file, bytes);
    const parts = (): Uint8Array[] => [new Uint8Array(1000).fill(0xee), new Uint8Array(3096).fill(0xee), new Uint8Array(61440).fill(0xee)];
    const joined = (p: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(p));
    for (const inline of [undefined, 'pool-busy'] as const) {
      const off = await FileNode.open(file, { readOnly: true, inlineCachedReads: inline });
      assert.equal(off.readCachedSync(0, parts(), 65536), false, `inline reads ${inline ?? 'off'} (pool idle)`);
      await off.close();
    }
    const node = await FileNode.open(file, { readOnly: true, inlineCachedReads: 'always' });
    const raw = await openImage(file, { format: 'raw', readOnly: true, inlineCachedReads: 'always' });
    try {
      for (const n of [node, raw]) {
        const p = parts();
        assert.equal(n.readCachedSync!(5000, p, 65536), true, n.driver);
        assert.deepEqual(joined(p), bytes.subarray(5000, 5000 + 65536), n.driver);
        assert.equal(n.readCachedSync!(SIZE - 4096, parts(), 65536), false, `${n.driver}: past the end of the file`);
      }
      const many = Array.from({ length: 1025 }, () => new Uint8Array(64));
      assert.equal(node.readCachedSync(0, many, 1025 * 64), false, 'more buffers than one preadv2 takes');
      const shared = new Uint8Array(new SharedArrayBuffer(65536));
      assert.equal(node.readCachedSync(4096, [shared.subarray(0, 512), shared.subarray(512)], 65536), true, 'inline reads stay on; guest RAM is shared memory');
      assert.deepEqual(new Uint8Array(shared), bytes.subarray(4096, 4096 + 65536));
      await evict(file, SIZE / 2, SIZE / 2);
      assert.equal(node.readCachedSync(SIZE / 2, parts(), 65536), false, 'bytes that need the disk');
      const buf = new Uint8Array(65536);
      await node.read(SIZE / 2, buf);
      assert.deepEqual(buf, bytes.subarray(SIZE / 2, SIZE / 2 + 65536));
    } finally {
      await node.close();
      await closeImage(raw);
    }
  } finally {
    await cleanup();
  }
});
