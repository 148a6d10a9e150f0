import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createQcow2 } from '../../src/block/formats/qcow2/create.js';
import type { Qcow2Node } from '../../src/block/formats/qcow2/node.js';
import { parseQcow2Header, INCOMPAT_DIRTY } from '../../src/block/formats/qcow2/header.js';
import { closeImage, openImage } from '../../src/block/open.js';
import type { ImageNode } from '../../src/block/formats/format.js';
import { qemuCheckAndCompare } from '../helpers/images.js';
import { mustRun, qemuImg, qemuIo, scratchDir } from '../helpers/peers.js';

const SIZE = 3 * 2 ** 20 + 4096;

function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff;
    return s;
  };
}

/** Random writes, zeroing and discards through the driver, mirrored in a raw buffer. */
async function exercise(img: ImageNode, ref: Uint8Array, seed: number, ops = 60, discards = true): Promise<void> {
  const r = rng(seed);
  const cs = img.granularity;
  for (let i = 0; i < ops; i++) {
    const off = r() % ref.length;
    const len = Math.min(ref.length - off, 1 + (r() % 150000));
    const op = r() % 6;
    if (op === 0) {
      await img.writeZeroes(off, len, { mayUnmap: (r() & 1) === 1 });
      ref.fill(0, off, off + len);
    } else if (op === 1 && discards) {
      await img.discard(off, len);
      const a = Math.ceil(off / cs) * cs;
      const e = off + len === ref.length ? ref.length : Math.floor((off + len) / cs) * cs;
      if (a < e) ref.fill(0, a, e);
    } else {
      const b = new Uint8Array(len);
      for (let j = 0; j < len; j += 61) b[j] = (r() & 255) | 1;
      await img.write(off, b);
      ref.set(b, off);
    }
  }
}

async function readAll(img: ImageNode): Promise<Uint8Array> {
  const buf = new Uint8Array(img.size());
  await img.read(0, buf);
  return buf;
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

const MATRIX: Array<[string, Record<string, string>]> = [
  ['v2 64k', { compat: '0.10' }],
  ['v3 512 refcount_bits=1', { cluster_size: '512', refcount_bits: '1' }],
  ['v2 512', { compat: '0.10', cluster_size: '512' }],
  ['v3 4k refcount_bits=64', { cluster_size: '4k', refcount_bits: '64' }],
  ['v3 2M', { cluster_size: '2M' }],
  ['v3 64k extended_l2', { extended_l2: 'on' }],
  ['v3 16k extended_l2 refcount_bits=8', { extended_l2: 'on', cluster_size: '16k', refcount_bits: '8' }],
  ['v3 lazy_refcounts', { lazy_refcounts: 'on' }],
  ['v3 preallocation=metadata', { preallocation: 'metadata' }],
];

test('images tsemu writes pass qemu-img check and compare (v2/v3, cluster sizes, refcount widths, extended L2)', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    for (const [name, opts] of MATRIX) {
      const file = path.join(dir, `${name.replace(/[^a-z0-9]+/gi, '_')}.qcow2`);
      await createQcow2({ filename: file, size: SIZE, options: new Map(Object.entries(opts)) });
      const ref = new Uint8Array(SIZE);
      const img = await openImage(file);
      await exercise(img, ref, name.length * 7919);
      assert.equal(firstDifference(await readAll(img), ref), -1, `${name}: read back`);
      await closeImage(img);
      await qemuCheckAndCompare(file, ref, dir);
      const info = JSON.parse((await mustRun(qemuImg(['info', '--output=json', file]), 'info')).stdout);
      const again = (await openImage(file, { readOnly: true })) as Qcow2Node;
      assert.deepEqual(again.formatSpecific(), info['format-specific'], `${name}: format-specific`);
      assert.equal(again.clusterSize, info['cluster-size']);
      assert.equal(again.dirtyFlag, info['dirty-flag']);
      await closeImage(again);
    }
  } finally {
    await cleanup();
  }
});

test('images qemu-io writes read back identical through the driver', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const configs = ['compat=0.10', 'cluster_size=512,refcount_bits=1', 'cluster_size=2M', 'extended_l2=on', 'lazy_refcounts=on'];
    for (const opts of configs) {
      const file = path.join(dir, 'q.qcow2');
      await mustRun(qemuImg(['create', '-f', 'qcow2', '-o', opts, file, String(SIZE)]), 'create');
      await mustRun(qemuIo(['-f', 'qcow2', '-c', 'write -P 0x11 0 100k', '-c', 'write -P 0x22 70000 5000',
        '-c', 'write -z 20k 40k', '-c', 'write -P 0x33 2M 300k', '-c', 'discard 2M 128k', '-c', 'write -P 0x44 3M 4096', file]), 'qemu-io');
      const raw = path.join(dir, 'q.raw');
      await mustRun(qemuImg(['convert', '-O', 'raw', file, raw]), 'convert');
      const img = await openImage(file, { readOnly: true });
      assert.equal(firstDifference(await readAll(img), new Uint8Array(await readFile(raw))), -1, opts);
      await closeImage(img);
    }
  } finally {
    await cleanup();
  }
});

test('compressed clusters: qemu-img convert -c images read back, writeCompressed output passes check', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const src = path.join(dir, 'src.raw');
    const data = new Uint8Array(SIZE);
    const r = rng(5);
    for (let i = 0; i < SIZE; i += 3) data[i] = r() % 7; // compressible
    data.fill(0, 1 << 20, 2 << 20);
    await writeFile(src, data);
    for (const type of ['zlib', 'zstd']) {
      const file = path.join(dir, `c-${type}.qcow2`);
      await mustRun(qemuImg(['convert', '-c', '-O', 'qcow2', '-o', `compression_type=${type}`, src, file]), 'convert -c');
      const img = await openImage(file, { readOnly: true });
      assert.equal(firstDifference(await readAll(img), data), -1, `${type}: qemu-compressed read`);
      const st = await img.blockStatus(0, 65536);
      assert.equal(st.compressed, true);
      await closeImage(img);

      const mine = path.join(dir, `mine-${type}.qcow2`);
      await createQcow2({ filename: mine, size: SIZE, options: new Map([['compression_type', type]]) });
      const out = (await openImage(mine)) as Qcow2Node;
      await out.writeCompressed!(0, data);
      // Overwrite inside a compressed cluster: copy on write.
      const patch = new Uint8Array(1000).fill(0xee);
      await out.write(70000, patch);
      const ref = data.slice();
      ref.set(patch, 70000);
      assert.equal(firstDifference(await readAll(out), ref), -1, `${type}: own compressed read`);
      await closeImage(out);
      await qemuCheckAndCompare(mine, ref, dir);
      const check = await qemuImg(['check', mine]);
      assert.match(check.stdout, /compressed clusters/);
    }
  } finally {
    await cleanup();
  }
});

test('backing chains: relative names, partial writes copy from the backing file, zeroes past its end', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const base = path.join(dir, 'base.qcow2');
    await mustRun(qemuImg(['create', '-f', 'qcow2', base, String(2 ** 20)]), 'create base');
    await mustRun(qemuIo(['-f', 'qcow2', '-c', 'write -P 0x5a 0 1M', base]), 'fill base');
    for (const opts of [{}, { compat: '0.10' }, { extended_l2: 'on' }] as Array<Record<string, string>>) {
      const top = path.join(dir, 'top.qcow2');
      await createQcow2({
        filename: top,
        size: SIZE,
        options: new Map(Object.entries({ backing_file: 'base.qcow2', backing_fmt: 'qcow2', ...opts })),
      });
      const ref = new Uint8Array(SIZE);
      ref.fill(0x5a, 0, 2 ** 20);
      const img = await openImage(top);
      assert.equal(img.backingFilename, 'base.qcow2');
      await img.write(1000, new Uint8Array(10).fill(1));
      ref.fill(1, 1000, 1010);
      await img.writeZeroes(200000, 300000);
      ref.fill(0, 200000, 500000);
      await img.write(2 ** 20 - 5, new Uint8Array(10).fill(2));
      ref.fill(2, 2 ** 20 - 5, 2 ** 20 + 5);
      // Version 2 has no zero flag: discarding lets the backing file show through.
      await exercise(img, ref, 99, 20, !('compat' in opts));
      assert.equal(firstDifference(await readAll(img), ref), -1, JSON.stringify(opts));
      await closeImage(img);
      await qemuCheckAndCompare(top, ref, dir);
    }
  } finally {
    await cleanup();
  }
});

test('clusters shared with an internal snapshot are copied on write', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 's.qcow2');
    await mustRun(qemuImg(['create', '-f', 'qcow2', file, String(SIZE)]), 'create');
    await mustRun(qemuIo(['-f', 'qcow2', '-c', 'write -P 0x61 0 2M', file]), 'write');
    await mustRun(qemuImg(['snapshot', '-c', 'snap1', file]), 'snapshot');
    const img = await openImage(file);
    const ref = new Uint8Array(SIZE);
    ref.fill(0x61, 0, 2 ** 21);
    await exercise(img, ref, 3, 30);
    await closeImage(img);
    await qemuCheckAndCompare(file, ref, dir);
    const snap = path.join(dir, 'snap.raw');
    await mustRun(qemuImg(['convert', '-l', 'snap1', '-O', 'raw', file, snap]), 'convert snapshot');
    const expected = new Uint8Array(SIZE);
    expected.fill(0x61, 0, 2 ** 21);
    assert.equal(firstDifference(new Uint8Array(await readFile(snap)), expected), -1, 'snapshot content unchanged');
  } finally {
    await cleanup();
  }
});

test('lazy refcounts set the dirty bit while writing and clear it on close; corrupt images open read-only only', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'l.qcow2');
    await createQcow2({ filename: file, size: SIZE, options: new Map([['lazy_refcounts', 'on']]) });
    const img = await openImage(file);
    await img.write(0, new Uint8Array(4096).fill(9));
    await img.flush();
    const during = await readFile(file);
    assert.equal(parseQcow2Header(during, during.length).incompatibleFeatures & INCOMPAT_DIRTY, INCOMPAT_DIRTY);
    await closeImage(img);
    const after = await readFile(file);
    assert.equal(parseQcow2Header(after, after.length).incompatibleFeatures & INCOMPAT_DIRTY, 0n);
    await mustRun(qemuImg(['check', file]), 'check');

    after[79] |= 2; // incompatible feature bit 1: corrupt
    await writeFile(file, after);
    await assert.rejects(openImage(file), /Image is corrupt; cannot be opened read\/write/);
    const ro = (await openImage(file, { readOnly: true })) as Qcow2Node;
    assert.equal((ro.formatSpecific().data as { corrupt: boolean }).corrupt, true);
    await closeImage(ro);
  } finally {
    await cleanup();
  }
});

test('resize grows with preallocation and shrinks, and qemu-img agrees', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'r.qcow2');
    await createQcow2({ filename: file, size: 2 ** 20, options: new Map([['cluster_size', '4k']]) });
    const img = await openImage(file);
    const ref = new Uint8Array(SIZE);
    await img.write(0, new Uint8Array(2 ** 20).fill(3));
    ref.fill(3, 0, 2 ** 20);
    await img.truncate(SIZE, { preallocation: 'metadata' });
    await img.write(SIZE - 100, new Uint8Array(100).fill(4));
    ref.fill(4, SIZE - 100);
    await closeImage(img);
    await qemuCheckAndCompare(file, ref, dir);

    const again = await openImage(file);
    await assert.rejects(again.truncate(100000), /shrink/);
    await again.truncate(512 * 1024, { shrink: true });
    await closeImage(again);
    await qemuCheckAndCompare(file, ref.subarray(0, 512 * 1024), dir);
    const info = JSON.parse((await mustRun(qemuImg(['info', '--output=json', file]), 'info')).stdout);
    assert.equal(info['virtual-size'], 512 * 1024);
  } finally {
    await cleanup();
  }
});

test('create rejects invalid option combinations with qemu-img messages', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'x.qcow2');
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ extended_l2: 'on', cluster_size: '4k' }, /at least 16384 bytes/],
      [{ refcount_bits: '3' }, /power of two and may not exceed 64 bits/],
      [{ compat: '0.10', lazy_refcounts: 'on' }, /Lazy refcounts only supported/],
      [{ compat: '0.10', compression_type: 'zstd' }, /Non-zlib compression type/],
      [{ cluster_size: '4M' }, /between 512 and 2048k/],
      [{ compat: '2' }, /Parameter 'version' does not accept value '2'/],
      [{ data_file: 'x' }, /not supported/],
      [{ 'encrypt.format': 'luks' }, /not supported/],
      [{ foo: 'bar' }, /Invalid parameter 'foo'/],
      [{ backing_fmt: 'raw' }, /Backing format cannot be used without backing file/],
    ];
    for (const [opts, re] of cases) {
      await assert.rejects(createQcow2({ filename: file, size: 2 ** 20, options: new Map(Object.entries(opts)) }), re);
    }
  } finally {
    await cleanup();
  }
});

test('corruption found while open read-write marks the image corrupt; unknown versions are still qcow2', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'c.qcow2');
    await createQcow2({ filename: file, size: 2 ** 20, options: new Map() });
    const img = await openImage(file);
    await img.write(0, new Uint8Array(65536).fill(1));
    await closeImage(img);
    const bytes = new Uint8Array(await readFile(file));
    const dv = new DataView(bytes.buffer);
    const l1 = Number(dv.getBigUint64(40));
    const l2 = Number(dv.getBigUint64(l1) & 0x00fffffffffffe00n);
    dv.setBigUint64(l2, dv.getBigUint64(l2) + 512n); // data cluster offset no longer aligned
    await writeFile(file, bytes);

    const ro = await openImage(file, { readOnly: true });
    await assert.rejects(ro.read(0, new Uint8Array(512)), /unaligned offset/);
    await closeImage(ro);
    const rw = await openImage(file);
    await assert.rejects(rw.read(0, new Uint8Array(512)), /Marking image as corrupt: .*unaligned offset/);
    await closeImage(rw);
    await assert.rejects(openImage(file), /Image is corrupt; cannot be opened read\/write/);

    // A data cluster that points at the refcount table: writing there is refused.
    dv.setBigUint64(l2, (1n << 63n) | dv.getBigUint64(48));
    dv.setBigUint64(72, 0n); // not marked corrupt yet
    await writeFile(file, bytes);
    const victim = await openImage(file);
    await assert.rejects(victim.write(0, new Uint8Array(512).fill(7)), /overlaps the refcount table/);
    await closeImage(victim);

    dv.setUint32(4, 4);
    await writeFile(file, bytes);
    await assert.rejects(openImage(file, { readOnly: true }), /Unsupported qcow2 version 4/);
  } finally {
    await cleanup();
  }
});
