import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import path from 'node:path';
import { open, readFile } from 'node:fs/promises';
import { FileWriteQueue } from '../../src/block/protocols/file-write-queue.js';
import { FileNode } from '../../src/block/protocols/file.js';
import { scratchDir } from '../helpers/peers.js';

interface Call {
  position: number;
  lengths: number[];
}

/**
 * Runs `body` with fs.writev recorded: every call's position and buffer lengths,
 * and how many calls were in flight at most at once.
 */
async function recordingWritev<T>(body: (calls: Call[], peak: () => number) => Promise<T>): Promise<T> {
  const real = fs.writev;
  const calls: Call[] = [];
  let inFlight = 0;
  let peak = 0;
  const spy = ((fd: number, bufs: Uint8Array[], position: number, cb: (e: Error | null, n: number) => void) => {
    calls.push({ position, lengths: bufs.map((b) => b.length) });
    peak = Math.max(peak, ++inFlight);
    real(fd, bufs, position, (e, n) => {
      inFlight--;
      cb(e, n);
    });
  }) as typeof fs.writev;
  fs.writev = spy;
  syncBuiltinESMExports();
  try {
    return await body(calls, () => peak);
  } finally {
    fs.writev = real;
    syncBuiltinESMExports();
  }
}

const filled = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v);

async function withFile<T>(body: (file: string, fd: number) => Promise<T>): Promise<T> {
  const { dir, cleanup } = await scratchDir();
  const file = path.join(dir, 'q.img');
  const fh = await open(file, 'w+');
  try {
    return await body(file, fh.fd);
  } finally {
    await fh.close();
    await cleanup();
  }
}

test('one write in flight; queued writes that continue each other go out as one pwritev, out of queue order', () =>
  withFile((file, fd) =>
    recordingWritev(async (calls, peak) => {
      const q = new FileWriteQueue(fd);
      const k = 4096;
      const writes = [
        q.write(0, [filled(k, 1)]),
        q.write(4 * k, [filled(k, 4)]),
        q.write(k, [filled(k, 2)]),
        q.write(2 * k, [filled(k, 3), filled(k, 9)]),
      ];
      await Promise.all(writes);
      assert.equal(peak(), 1, 'never two writes on the file at once');
      assert.deepEqual(calls, [
        { position: 0, lengths: [k] },
        { position: k, lengths: [k, k, k, k] },
      ]);
      const bytes = await readFile(file);
      assert.deepEqual([...bytes.filter((_, i) => i % k === 0)], [1, 2, 3, 9, 4]);
    }),
  ));

test('large queued writes go out one by one even when they continue each other', () =>
  withFile((_file, fd) =>
    recordingWritev(async (calls) => {
      const q = new FileWriteQueue(fd);
      const m = 1 << 20;
      await Promise.all([0, 1, 2].map((i) => q.write(i * m, [filled(m, i)])));
      assert.deepEqual(calls.map((c) => c.position), [0, m, 2 * m]);
    }),
  ));

test('overlapping writes reach the file in the order they were issued', () =>
  withFile((file, fd) =>
    recordingWritev(async (calls) => {
      const q = new FileWriteQueue(fd);
      await Promise.all([
        q.write(0, [filled(100, 1)]),
        q.write(50, [filled(100, 2)]),
        q.write(150, [filled(10, 5)]),
        q.write(0, [filled(60, 3)]),
        q.write(60, [filled(10, 4)]),
      ]);
      // Queued 2, 5, 3, 4 overlap one another: 2 goes out with 5 (it continues 2 in queue
      // order), then 3 with 4; never 3 before 2.
      assert.deepEqual(calls.map((c) => c.position), [0, 50, 0]);
      const bytes = await readFile(file);
      assert.deepEqual([bytes[0], bytes[59], bytes[60], bytes[69], bytes[70], bytes[149], bytes[150]], [3, 3, 4, 4, 2, 2, 5]);
    }),
  ));

test('a failed batch: written writes resolve, each unfinished one gets its own error, the queue goes on', async () => {
  // Beyond the filesystem's largest file size a write fails (EFBIG) with no signal.
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'big.img');
    const fh = await open(file, 'w+');
    try {
      const q = new FileWriteQueue(fh.fd);
      const k = 4096;
      const limit = await largestOffset(fh.fd);
      const results = await Promise.allSettled([
        q.write(0, [filled(k, 1)]),
        q.write(limit - k, [filled(k, 2)]),
        q.write(limit, [filled(k, 3)]),
        q.write(limit + k, [filled(k, 4)]),
        q.write(k, [filled(k, 5)]),
      ]);
      assert.deepEqual(
        results.map((r) => r.status),
        ['fulfilled', 'fulfilled', 'rejected', 'rejected', 'fulfilled'],
      );
      for (const r of results) if (r.status === 'rejected') assert.match(String(r.reason), /EFBIG|EINVAL/);
      const probe = Buffer.alloc(1);
      fs.readSync(fh.fd, probe, 0, 1, limit - 1);
      assert.equal(probe[0], 2);
      fs.readSync(fh.fd, probe, 0, 1, k);
      assert.equal(probe[0], 5);
    } finally {
      await fh.close();
    }
  } finally {
    await cleanup();
  }
});

/** The first offset at which a write to `fd`'s file fails (a 4 KiB multiple, found by bisection). */
async function largestOffset(fd: number): Promise<number> {
  let ok = 0;
  let bad = 2 ** 52;
  while (bad - ok > 4096) {
    const mid = Math.floor((ok + bad) / 2 / 4096) * 4096;
    try {
      fs.writeSync(fd, new Uint8Array(1), 0, 1, mid);
      ok = mid;
    } catch {
      bad = mid;
    }
  }
  fs.ftruncateSync(fd, 0);
  return bad;
}

test('FileNode: flush and reads wait for queued writes; a read sees what was issued before it', () =>
  withFile(async (file) => {
    const node = await FileNode.open(file);
    try {
      await node.truncate(1 << 20);
      const writes = Array.from({ length: 16 }, (_, i) => node.write(i * 65536, filled(65536, i + 1)));
      const back = new Uint8Array(65536);
      const read = node.read(15 * 65536, back);
      let writesDone = 0;
      for (const w of writes) void w.then(() => writesDone++);
      await node.flush();
      assert.equal(writesDone, 16, 'flush resolved after every write issued before it');
      await read;
      assert.ok(back.every((b) => b === 16));
      await Promise.all(writes);
    } finally {
      await node.close();
    }
  }));

test('FileNode: writeZeroes after an unawaited write of the same range leaves zeroes', () =>
  withFile(async (file) => {
    const node = await FileNode.open(file);
    try {
      await node.truncate(1 << 20);
      const first = node.write(0, filled(65536, 7));
      const data = node.write(65536, filled(65536, 7));
      const zero = node.writeZeroes(65536, 65536);
      await Promise.all([first, data, zero]);
      const back = new Uint8Array(65536);
      await node.read(65536, back);
      assert.ok(back.every((b) => b === 0));
    } finally {
      await node.close();
    }
  }));
