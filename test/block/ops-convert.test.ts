import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, readdir, stat, writeFile, truncate } from 'node:fs/promises';
import path from 'node:path';
import { convertImage } from '../../src/block/ops/convert.js';
import { mustRun, qemuImg, scratchDir, tsemu } from '../helpers/peers.js';

/** A sparse raw image of `mib` MiB with random data in every other 64 KiB cluster of the first half. */
async function sparseRaw(file: string, mib: number): Promise<void> {
  await writeFile(file, '');
  await truncate(file, mib << 20);
  const { open } = await import('node:fs/promises');
  const h = await open(file, 'r+');
  for (let off = 0; off < (mib << 20) / 2; off += 128 << 10) await h.write(randomBytes(64 << 10), 0, 64 << 10, off);
  await h.close();
}

test('convert raw to raw: identical content, zero clusters stay holes', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const src = path.join(dir, 'src.raw');
    const out = path.join(dir, 'out.raw');
    await sparseRaw(src, 8);
    await convertImage({ sources: [src], target: out, sourceFormat: 'raw', outputFormat: 'raw' });
    assert.deepEqual(await readFile(out), await readFile(src));
    const blocks = (await stat(out)).blocks * 512;
    assert.ok(blocks <= 2.5 * (1 << 20), `target allocates ${blocks} bytes for 2 MiB of data`);
    await mustRun(qemuImg(['compare', '-f', 'raw', '-F', 'raw', src, out]), 'qemu-img compare');
  } finally {
    await cleanup();
  }
});

test('convert -S 0 allocates the whole target', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const src = path.join(dir, 'src.raw');
    const out = path.join(dir, 'out.raw');
    await sparseRaw(src, 4);
    await convertImage({ sources: [src], target: out, sourceFormat: 'raw', sparseSize: 0 });
    assert.deepEqual(await readFile(out), await readFile(src));
    assert.ok((await stat(out)).blocks * 512 >= 4 << 20);
  } finally {
    await cleanup();
  }
});

test('convert concatenates several sources', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const a = path.join(dir, 'a.raw');
    const b = path.join(dir, 'b.raw');
    const out = path.join(dir, 'out.raw');
    await writeFile(a, randomBytes(3 * 512 + (1 << 20)));
    await sparseRaw(b, 2);
    const r = await tsemu(['img', 'convert', '-f', 'raw', '-O', 'raw', a, b, out]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await readFile(out), Buffer.concat([await readFile(a), await readFile(b)]));
  } finally {
    await cleanup();
  }
});

test('convert -n writes into an existing target; a smaller one is refused', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const src = path.join(dir, 'src.raw');
    const out = path.join(dir, 'out.raw');
    await sparseRaw(src, 2);
    await writeFile(out, Buffer.alloc(2 << 20, 0xee));
    await convertImage({ sources: [src], target: out, sourceFormat: 'raw', noCreate: true });
    assert.deepEqual(await readFile(out), await readFile(src));
    await writeFile(out, Buffer.alloc(1 << 20));
    const r = await tsemu(['img', 'convert', '-n', '-f', 'raw', src, out]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /output file is smaller than input file/);
  } finally {
    await cleanup();
  }
});

test('a new target appears only when complete: a failed convert leaves nothing behind', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const src = path.join(dir, 'src.raw');
    const out = path.join(dir, 'out.raw');
    await sparseRaw(src, 1);
    const r = await tsemu(['img', 'convert', '-c', '-f', 'raw', '-O', 'raw', src, out]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Compression not supported for this file format/);
    assert.equal(existsSync(out), false);
    assert.deepEqual(await readdir(dir), ['src.raw'], 'no partial file left behind');
    const ok = await tsemu(['img', 'convert', '-f', 'raw', src, out]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual((await readdir(dir)).sort(), ['out.raw', 'src.raw']);
  } finally {
    await cleanup();
  }
});

test('convert -p prints qemu-img progress figures; -q prints nothing', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const src = path.join(dir, 'src.raw');
    await sparseRaw(src, 8);
    const r = await tsemu(['img', 'convert', '-p', '-f', 'raw', src, path.join(dir, 'o1.raw')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ {4}\(0\.00\/100%\)\r/);
    assert.match(r.stdout, / {4}\(100\.00\/100%\)\r\n$/);
    const q = await tsemu(['img', 'convert', '-p', '-q', '-f', 'raw', src, path.join(dir, 'o2.raw')]);
    assert.equal(q.code, 0, q.stderr);
    assert.equal(q.stdout, '');
  } finally {
    await cleanup();
  }
});

test('convert rejects bad options with qemu-img messages and exit code 1', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const src = path.join(dir, 'src.raw');
    await sparseRaw(src, 1);
    const out = path.join(dir, 'o.raw');
    const cases: [string[], RegExp][] = [
      [['-m', '0', src, out], /Invalid number of coroutines/],
      [['-S', '1x', src, out], /Invalid buffer size for sparse output/],
      [['-t', 'bogus', src, out], /Invalid cache option: bogus/],
      [['--target-is-zero', src, out], /--target-is-zero requires use of -n flag/],
      [['-O', 'nosuchfmt', src, out], /Unknown file format 'nosuchfmt'/],
      [['-O', 'raw', '-B', src, '-F', 'raw', src, out], /Backing file not supported for file format 'raw'/],
      [[src], /Must specify image file name/],
      [[path.join(dir, 'missing.raw'), out], /Could not open/],
    ];
    for (const [args, message] of cases) {
      const r = await tsemu(['img', 'convert', ...args]);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    assert.equal(existsSync(out), false);
  } finally {
    await cleanup();
  }
});

test('converting an image onto itself (or onto a layer of its chain) is refused and the image survives', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const src = path.join(dir, 'src.raw');
    await sparseRaw(src, 1);
    const before = await readFile(src);
    for (const args of [['-f', 'raw', src, src], ['-n', '-f', 'raw', src, src]]) {
      const r = await tsemu(['img', 'convert', ...args]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /Failed to get "write" lock/);
    }
    const dd = await tsemu(['img', 'dd', '-f', 'raw', `if=${src}`, `of=${src}`]);
    assert.equal(dd.code, 1);
    assert.deepEqual(await readFile(src), before);
  } finally {
    await cleanup();
  }
});

test('convert -o help lists the output format\'s options like qemu-img', async () => {
  for (const extra of [[], ['a.img', 'b.img']]) {
    const ours = await tsemu(['img', 'convert', '-O', 'qcow2', '-o', 'help', ...extra]);
    const theirs = await mustRun(qemuImg(['convert', '-O', 'qcow2', '-o', 'help', ...extra]), 'qemu-img convert -o help');
    assert.equal(ours.code, 0, ours.stderr);
    assert.equal(ours.stdout, theirs.stdout);
  }
});
