import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { open, writeFile, truncate } from 'node:fs/promises';
import path from 'node:path';
import { mustRun, qemuImg, qemuIo, scratchDir, tsemu } from '../helpers/peers.js';

/** A raw image with random clusters, compressible clusters and holes (4 MiB). */
async function mixedRaw(file: string): Promise<void> {
  await writeFile(file, '');
  await truncate(file, 4 << 20);
  const h = await open(file, 'r+');
  for (let c = 0; c < 64; c++) {
    const off = c * 65536;
    if (c % 4 === 0) await h.write(randomBytes(65536), 0, 65536, off);
    if (c % 4 === 1) await h.write(Buffer.alloc(65536, `cluster ${c} `), 0, 65536, off);
    if (c % 4 === 2 && c % 8 === 2) await h.write(randomBytes(1000), 0, 1000, off + 7000);
  }
  await h.close();
}

async function convert(args: string[]): Promise<void> {
  const r = await tsemu(['img', 'convert', ...args]);
  assert.equal(r.code, 0, `convert ${args.join(' ')}: ${r.stderr}`);
}

async function json(args: string[]): Promise<Record<string, unknown>> {
  return JSON.parse((await mustRun(qemuImg(args), `qemu-img ${args[0]}`)).stdout) as Record<string, unknown>;
}

test('raw -> qcow2 -> raw round trip: identical, qemu-img check clean', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const src = path.join(dir, 'src.raw');
    await mixedRaw(src);
    const q = path.join(dir, 'out.qcow2');
    const back = path.join(dir, 'back.raw');
    await convert(['-f', 'raw', '-O', 'qcow2', src, q]);
    await mustRun(qemuImg(['check', q]), 'qemu-img check');
    await mustRun(qemuImg(['compare', '-f', 'raw', src, q]), 'compare raw/qcow2');
    await convert(['-O', 'raw', q, back]);
    await mustRun(qemuImg(['compare', '-f', 'raw', '-F', 'raw', src, back]), 'compare round trip');
  } finally {
    await cleanup();
  }
});

test('qcow2 options, small clusters and preallocation pass through -o', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const src = path.join(dir, 'src.raw');
    await mixedRaw(src);
    const q = path.join(dir, 'out.qcow2');
    await convert(['-f', 'raw', '-O', 'qcow2', '-o', 'cluster_size=4k,compat=0.10', src, q]);
    await mustRun(qemuImg(['check', q]), 'qemu-img check');
    await mustRun(qemuImg(['compare', '-f', 'raw', src, q]), 'compare');
    const info = await json(['info', '--output=json', q]);
    assert.equal(info['cluster-size'], 4096);
    const m = path.join(dir, 'meta.qcow2');
    await convert(['-f', 'raw', '-O', 'qcow2', '-o', 'preallocation=metadata', src, m]);
    await mustRun(qemuImg(['check', m]), 'qemu-img check metadata');
    await mustRun(qemuImg(['compare', '-f', 'raw', src, m]), 'compare metadata');
  } finally {
    await cleanup();
  }
});

for (const type of ['zlib', 'zstd']) {
  test(`convert -c (${type}) writes compressed clusters qemu-img reads back identically`, async () => {
    const { dir, cleanup } = await scratchDir();
    try {
      const src = path.join(dir, 'src.raw');
      await mixedRaw(src);
      const q = path.join(dir, 'c.qcow2');
      await convert(['-c', '-f', 'raw', '-O', 'qcow2', '-o', `compression_type=${type}`, src, q]);
      const check = await json(['check', '--output=json', q]);
      assert.ok(Number(check['compressed-clusters']) >= 16, `compressed clusters: ${JSON.stringify(check)}`);
      await mustRun(qemuImg(['compare', '-f', 'raw', src, q]), 'compare');
      const info = await json(['info', '--output=json', q]);
      assert.equal((info['format-specific'] as { data: Record<string, unknown> }).data['compression-type'], type);
    } finally {
      await cleanup();
    }
  });
}

test('convert of an overlay copies the whole chain; -B makes an overlay holding only the top layer', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const base = path.join(dir, 'base.qcow2');
    const top = path.join(dir, 'top.qcow2');
    await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', base, '4M']), 'create base');
    await mustRun(qemuIo(['-c', 'write -P 1 0 2M', base]), 'write base');
    await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', top]), 'create top');
    await mustRun(qemuIo(['-c', 'write -P 2 1M 64k', '-c', 'write -z 1536k 64k', '-c', 'write -P 3 3M 64k', top]), 'write top');

    const flat = path.join(dir, 'flat.qcow2');
    await convert(['-O', 'qcow2', top, flat]);
    await mustRun(qemuImg(['compare', top, flat]), 'compare flat');
    assert.equal((await json(['info', '--output=json', flat]))['backing-filename'], undefined);

    const q = path.join(dir, 'q-overlay.qcow2');
    const t = path.join(dir, 't-overlay.qcow2');
    await mustRun(qemuImg(['convert', '-O', 'qcow2', '-B', 'base.qcow2', '-F', 'qcow2', top, q]), 'qemu-img convert -B');
    await convert(['-O', 'qcow2', '-B', 'base.qcow2', '-F', 'qcow2', top, t]);
    await mustRun(qemuImg(['check', t]), 'qemu-img check');
    await mustRun(qemuImg(['compare', top, t]), 'compare overlay');
    const info = await json(['info', '--output=json', t]);
    assert.equal(info['backing-filename'], 'base.qcow2');
    assert.equal(info['backing-filename-format'], 'qcow2');
    const layer0 = async (f: string) =>
      (JSON.parse((await mustRun(qemuImg(['map', '--output=json', f]), 'map')).stdout) as { start: number; length: number; depth: number; zero: boolean }[])
        .filter((e) => e.depth === 0)
        .map((e) => `${e.start}+${e.length}${e.zero ? 'z' : ''}`);
    assert.deepEqual(await layer0(t), await layer0(q));
  } finally {
    await cleanup();
  }
});

test('convert -n into an existing qcow2, and several sources into one', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const a = path.join(dir, 'a.raw');
    const b = path.join(dir, 'b.raw');
    await mixedRaw(a);
    await writeFile(b, randomBytes(3 << 20));
    const both = path.join(dir, 'both.qcow2');
    await convert(['-f', 'raw', '-O', 'qcow2', a, b, both]);
    await mustRun(qemuImg(['check', both]), 'qemu-img check');
    const ref = path.join(dir, 'ref.raw');
    await mustRun(qemuImg(['convert', '-f', 'raw', '-O', 'raw', a, b, ref]), 'qemu-img convert (concatenate)');
    await mustRun(qemuImg(['compare', '-f', 'raw', ref, both]), 'compare concatenation');

    const existing = path.join(dir, 'existing.qcow2');
    await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', existing, '4M']), 'create target');
    await mustRun(qemuIo(['-c', 'write -P 0xee 0 4M', existing]), 'dirty target');
    await convert(['-n', '-f', 'raw', '-O', 'qcow2', a, existing]);
    await mustRun(qemuImg(['check', existing]), 'qemu-img check -n');
    await mustRun(qemuImg(['compare', '-f', 'raw', a, existing]), 'compare -n');
  } finally {
    await cleanup();
  }
});

test('a qcow2 made by qemu-img converts to raw identically', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const src = path.join(dir, 'src.raw');
    await mixedRaw(src);
    const q = path.join(dir, 'q.qcow2');
    await mustRun(qemuImg(['convert', '-c', '-f', 'raw', '-O', 'qcow2', src, q]), 'qemu-img convert -c');
    const out = path.join(dir, 'out.raw');
    await convert(['-O', 'raw', q, out]);
    await mustRun(qemuImg(['compare', '-f', 'raw', '-F', 'raw', src, out]), 'compare');
  } finally {
    await cleanup();
  }
});
