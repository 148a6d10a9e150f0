import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useImageMatrix, qemuImgIn, tsemuIn, errorText } from './ops-images.js';
import { mergeable, type MapEntry } from '../../src/block/ops/map.js';

const matrix = useImageMatrix();

const qemu = (args: string[]) => qemuImgIn(matrix.dir, args);
const ours = (args: string[]) => tsemuIn(matrix.dir, ['img', ...args]);


async function sameAsQemu(args: string[]): Promise<void> {
  const [q, t] = await Promise.all([qemu(args), ours(args)]);
  assert.equal(errorText(t.stderr), errorText(q.stderr), args.join(' '));
  assert.equal(t.stdout, q.stdout, args.join(' '));
  assert.equal(t.code, q.code, args.join(' '));
}

test('map JSON and human output equal qemu-img map on the image matrix', async (t) => {
  for (const img of matrix.images) {
    await t.test(img.name, { todo: img.knownDifference }, async () => {
      await sameAsQemu(['map', '--output=json', img.name]);
      await sameAsQemu(['map', img.name]);
    });
  }
});

test('map --start-offset / --max-length, including unaligned and past-the-end windows', async () => {
  for (const window of [
    ['--start-offset=100000', '--max-length=3M'],
    ['--start-offset=1000', '--max-length=10'],
    ['--start-offset=64M'],
    ['--max-length=0'],
    ['--start-offset=1M'],
  ]) {
    await sameAsQemu(['map', '--output=json', ...window, 'top.qcow2']);
    await sameAsQemu(['map', '--output=json', ...window, 'sparse.raw']);
  }
});

test('map errors: bad offsets, bad --output, missing image', async () => {
  await sameAsQemu(['map', '--start-offset=xx', 'v3.qcow2']);
  await sameAsQemu(['map', '--max-length=-1', 'v3.qcow2']);
  await sameAsQemu(['map', '--output=xml', 'v3.qcow2']);
  await sameAsQemu(['map', 'nonexistent.qcow2']);
});

test('extents merge only when every field agrees and host offsets continue', () => {
  const base: MapEntry = { start: 0, length: 4096, depth: 0, present: true, zero: false, data: true, offset: 8192, filename: 'f' };
  assert.ok(mergeable(base, { ...base, start: 4096, offset: 12288 }));
  assert.ok(!mergeable(base, { ...base, start: 4096, offset: 16384 }));
  assert.ok(!mergeable(base, { ...base, start: 4096, offset: 12288, filename: 'g' }));
  assert.ok(!mergeable(base, { ...base, start: 4096, offset: 12288, depth: 1 }));
  assert.ok(!mergeable({ ...base, length: 0 }, { ...base }));
  const hole: MapEntry = { start: 0, length: 512, depth: 1, present: false, zero: true, data: false };
  assert.ok(mergeable(hole, { ...hole, start: 512 }));
  assert.ok(!mergeable(hole, { ...hole, start: 512, offset: 0, filename: 'f' }));
});
