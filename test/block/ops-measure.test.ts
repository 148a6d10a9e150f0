import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useImageMatrix, qemuImgIn, tsemuIn, errorText } from './ops-images.js';
import { measureQcow2, qcow2BitmapsSize, refcountMetadataBytes } from '../../src/block/formats/qcow2/measure.js';
import { measureSource } from '../../src/block/ops/measure.js';
import { closeImage, openImage } from '../../src/block/open.js';
import { parseOptionString, parseSize } from '../../src/block/options.js';

const matrix = useImageMatrix();

const qemu = (args: string[]) => qemuImgIn(matrix.dir, args);
const ours = (args: string[]) => tsemuIn(matrix.dir, ['img', ...args]);

/** qemu-img measure's JSON, or its error text. */
async function qemuMeasure(args: string[]): Promise<unknown> {
  const r = await qemu(['measure', '--output=json', ...args]);
  return r.code === 0 ? JSON.parse(r.stdout) : { error: errorText(r.stderr).trim() };
}

function asJson(r: { required: number; fullyAllocated: number; bitmaps?: number }): Record<string, number> {
  const out: Record<string, number> = { required: r.required, 'fully-allocated': r.fullyAllocated };
  if (r.bitmaps !== undefined) out.bitmaps = r.bitmaps;
  return out;
}

const QCOW2_OPTIONS = [
  '', 'cluster_size=512', 'cluster_size=4k', 'cluster_size=2M', 'refcount_bits=1', 'refcount_bits=64',
  'refcount_bits=2,cluster_size=1k', 'extended_l2=on', 'extended_l2=on,cluster_size=16k', 'preallocation=full',
  'preallocation=metadata', 'compat=0.10', 'refcount_bits=8,cluster_size=32k,preallocation=falloc',
  // errors
  'cluster_size=3000', 'cluster_size=4M', 'compat=0.9', 'refcount_bits=3', 'compat=0.10,refcount_bits=8',
  'preallocation=bogus', 'extended_l2=on,cluster_size=4k',
];

test('qcow2 --size numbers and errors equal qemu-img measure', async () => {
  for (const size of ['0', '1', '65537', '100M', '1G', '17G', '1T', '300T', '123456789']) {
    for (const o of QCOW2_OPTIONS) {
      const expected = await qemuMeasure(['-O', 'qcow2', '--size', size, ...(o ? ['-o', o] : [])]);
      let actual: unknown;
      try {
        actual = asJson(await measureQcow2({ options: parseOptionString(o), size: parseSize(size), source: null }));
      } catch (e) {
        actual = { error: (e as Error).message };
      }
      assert.deepEqual(actual, expected, `--size ${size} -o ${o}`);
    }
  }
});

test('qcow2 numbers for copies of the image matrix equal qemu-img measure -O qcow2', async (t) => {
  for (const img of matrix.images) {
    await t.test(img.name, { todo: img.knownDifference }, async () => {
      const image = await openImage(`${matrix.dir}/${img.name}`, { readOnly: true });
      try {
        for (const o of ['', 'cluster_size=4k', 'cluster_size=2M', 'compat=0.10', 'extended_l2=on', 'backing_file=x', 'preallocation=falloc']) {
          const expected = await qemuMeasure(['-O', 'qcow2', ...(o ? ['-o', o] : []), img.name]);
          const size = Math.ceil(image.size() / 512) * 512;
          const actual = asJson(await measureQcow2({ options: parseOptionString(o), size, source: measureSource(image) }));
          assert.deepEqual(actual, expected, `${img.name} -o ${o}`);
        }
      } finally {
        await closeImage(image);
      }
    });
  }
});

test('the CLI prints what qemu-img measure prints (raw output format, human and JSON, errors)', async () => {
  const cases = [
    ['measure', '--size', '1G'],
    ['measure', '--size', '1000', '-O', 'raw'],
    ['measure', '--output=json', 'sparse.raw'],
    ['measure', 'full.raw'],
    ['measure', '--output=json', 'top.qcow2'],
    ['measure'],
    ['measure', '--size', '1G', 'sparse.raw'],
    ['measure', '--size', '1Q'],
    ['measure', '-O', 'raw', '-o', 'foo=bar', '--size', '1M'],
    ['measure', '-O', 'raw', '-o', 'preallocation=full', '--size', '1M'],
    ['measure', '--output=xml', '--size', '1M'],
  ];
  for (const args of cases) {
    const [q, r] = await Promise.all([qemu(args), ours(args)]);
    assert.equal(r.stdout, q.stdout, args.join(' '));
    assert.equal(errorText(r.stderr), errorText(q.stderr), args.join(' '));
    assert.equal(r.code, q.code, args.join(' '));
  }
});

test('the CLI measures qcow2 targets like qemu-img', async () => {
  for (const args of [
    ['measure', '-O', 'qcow2', '--size', '1G'],
    ['measure', '-O', 'qcow2', '--output=json', '-o', 'cluster_size=4k,refcount_bits=1', '--size', '3G'],
    ['measure', '-O', 'qcow2', 'v3.qcow2'],
    ['measure', '-O', 'qcow2', '--output=json', 'top.qcow2'],
    ['measure', '-O', 'qcow2', '-o', 'cluster_size=3000', '--size', '1M'],
  ]) {
    const [q, r] = await Promise.all([qemu(args), ours(args)]);
    assert.equal(r.stdout, q.stdout, args.join(' '));
    assert.equal(errorText(r.stderr), errorText(q.stderr), args.join(' '));
    assert.equal(r.code, q.code, args.join(' '));
  }
});

test('refcount metadata is the fixed point that also counts itself', () => {
  // 16388 clusters, 64 KiB clusters, 16-bit refcounts: one refcount block and one table cluster.
  assert.equal(refcountMetadataBytes(16388, 65536, 16), 2 * 65536);
  assert.equal(refcountMetadataBytes(0, 65536, 16), 0);
  // 1-bit refcounts in 512-byte clusters: 4096 clusters per block, 64 blocks per table cluster.
  const bytes = refcountMetadataBytes(4096, 512, 1);
  const blocks = Math.ceil((4096 + bytes / 512) / 4096);
  assert.ok(blocks * 512 + Math.ceil(blocks / 64) * 512 === bytes);
});

test('bitmap space: bitmap clusters, bitmap tables and the directory, as qemu-img counts them', async () => {
  // qemu-img bitmap --add (64 KiB granularity) and --add -g 1M on a 1 GiB image: qemu-img measure says 327680.
  const bitmaps = [{ name: 'mybitmap', granularity: 65536 }, { name: 'second', granularity: 1048576 }];
  assert.equal(qcow2BitmapsSize(bitmaps, 2 ** 30, 65536), 327680);
  assert.equal(qcow2BitmapsSize([], 2 ** 30, 65536), 0);
  const r = await measureQcow2({
    options: new Map(),
    size: 2 ** 30,
    source: { extents: async function* () {}, bitmaps },
  });
  assert.equal(r.bitmaps, 327680);
  const v2 = await measureQcow2({ options: new Map([['compat', '0.10']]), size: 2 ** 30, source: { extents: async function* () {}, bitmaps } });
  assert.equal(v2.bitmaps, undefined);
});
