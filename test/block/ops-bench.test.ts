import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { benchHeader, runBench } from '../../src/block/ops/bench.js';
import { mustRun, qemuImg, scratchDir, tsemu } from '../helpers/peers.js';

const defaults = {
  filename: '', count: 100, depth: 8, offset: 0, bufferSize: 4096, write: false, pattern: 0, flushInterval: 0, noDrain: false,
};

test('bench header lines are qemu-img bench\'s', () => {
  assert.deepEqual(benchHeader({ ...defaults, count: 75000, depth: 64 }), [
    'Sending 75000 read requests, 4096 bytes each, 64 in parallel (starting at offset 0, step size 4096)',
  ]);
  assert.deepEqual(benchHeader({ ...defaults, count: 1000, depth: 4, bufferSize: 8192, stepSize: 16384, offset: 1024, write: true, flushInterval: 100 }), [
    'Sending 1000 write requests, 8192 bytes each, 4 in parallel (starting at offset 1024, step size 16384)',
    'Sending flush every 100 requests',
  ]);
});

test('bench -w writes the pattern at offset + i*step, wrapping at the end of the image', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const img = path.join(dir, 'x.raw');
    await writeFile(img, Buffer.alloc(64 << 10));
    await runBench({ ...defaults, filename: img, format: 'raw', count: 20, bufferSize: 512, stepSize: 4096, offset: 1024, write: true, pattern: 0xab, flushInterval: 5 });
    const got = await readFile(img);
    for (let off = 0; off < got.length; off += 512) {
      const expected = off >= 1024 && (off - 1024) % 4096 === 0 && off + 512 <= got.length ? 0xab : 0;
      assert.equal(got[off], expected, `byte at ${off}`);
    }
  } finally {
    await cleanup();
  }
});

test('bench CLI prints qemu-img\'s lines, -q prints nothing, bad values are rejected', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const img = path.join(dir, 'x.qcow2');
    await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', img, '1M']), 'create');
    const r = await tsemu(['img', 'bench', '-c', '500', '-d', '4', img]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Sending 500 read requests, 4096 bytes each, 4 in parallel \(starting at offset 0, step size 4096\)\nRun completed in \d+\.\d{3} seconds\.\n$/);
    const w = await tsemu(['img', 'bench', '-w', '-q', '-c', '300', '--flush-interval=50', '--pattern=7', img]);
    assert.equal(w.code, 0, w.stderr);
    assert.equal(w.stdout, '');
    await mustRun(qemuImg(['check', img]), 'qemu-img check');
    for (const [args, message] of [
      [['-c', 'x', img], /Invalid request count specified/],
      [['--flush-interval=10', img], /--flush-interval is only available in write tests/],
      [['-s', '2M', img], /past the end/],
    ] as [string[], RegExp][]) {
      const e = await tsemu(['img', 'bench', ...args]);
      assert.equal(e.code, 1, args.join(' '));
      assert.match(e.stderr, message);
    }
  } finally {
    await cleanup();
  }
});
