import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useImageMatrix, qemuImgIn, tsemuIn } from './ops-images.js';
import { formatG, qdictKeys, sizeToStr, toQemuJson } from '../../src/cli/format-output.js';
import { collectImageInfo, fullBackingFilename } from '../../src/block/ops/info.js';

const matrix = useImageMatrix();

const qemu = (args: string[]) => qemuImgIn(matrix.dir, args);
const ours = (args: string[]) => tsemuIn(matrix.dir, args);

test('sizes print like qemu size_to_str', () => {
  const cases: [number, string][] = [
    [0, '0 B'], [512, '512 B'], [999, '999 B'], [1000, '0.977 KiB'], [1024, '1 KiB'], [200704, '196 KiB'],
    [331776, '324 KiB'], [1572864, '1.5 MiB'], [1023488, '1e+03 KiB'], [2 ** 30, '1 GiB'], [2 ** 60, '1 EiB'],
  ];
  for (const [n, text] of cases) assert.equal(sizeToStr(n), text, `${n}`);
  assert.equal(formatG(0.0001234, 3), '0.000123');
  assert.equal(formatG(123456, 3), '1.23e+05');
});

test('JSON keys come out in QDict bucket order, 4-space indented', () => {
  const keys = qdictKeys({ filename: 'a', format: 'raw', 'dirty-flag': false, 'actual-size': 1, 'virtual-size': 2 });
  assert.deepEqual(keys, ['virtual-size', 'filename', 'format', 'actual-size', 'dirty-flag']);
  assert.equal(toQemuJson({ required: 1, 'fully-allocated': 2 }), '{\n    "required": 1,\n    "fully-allocated": 2\n}');
  assert.equal(toQemuJson([]), '[\n]');
  assert.equal(toQemuJson('é"\n'), '"\\u00E9\\"\\n"');
});

test('backing names resolve like QEMU path_combine (no normalisation)', () => {
  assert.equal(fullBackingFilename('top.qcow2', 'base.qcow2'), 'base.qcow2');
  assert.equal(fullBackingFilename('sub/top.qcow2', 'base.qcow2'), 'sub/base.qcow2');
  assert.equal(fullBackingFilename('./a/../t', '../b'), './a/../../b');
  assert.equal(fullBackingFilename('/x/t', '/y/b'), '/y/b');
  assert.equal(fullBackingFilename('/x/t', 'nbd://host/e'), 'nbd://host/e');
});

test('info JSON and human output equal qemu-img info on the image matrix', async () => {
  for (const img of matrix.images) {
    for (const extra of [['--output=json'], []]) {
      const args = ['img', 'info', ...extra, img.name];
      const [q, t] = await Promise.all([qemu(args.slice(1)), ours(args)]);
      assert.equal(q.code, 0, q.stderr);
      assert.equal(t.code, 0, `${img.name}: ${t.stderr}`);
      if (extra.length > 0) assert.deepEqual(JSON.parse(t.stdout), JSON.parse(q.stdout), img.name);
      assert.equal(t.stdout, q.stdout, `${img.name} ${extra.join(' ')}`);
    }
  }
});

test('info --backing-chain lists every image of a chain like qemu-img', async () => {
  for (const name of ['top.qcow2', 'over-raw.qcow2', 'v3.qcow2']) {
    for (const extra of [['--output=json'], []]) {
      const args = ['info', '--backing-chain', ...extra, name];
      const [q, t] = await Promise.all([qemu(args), ours(['img', ...args])]);
      assert.equal(t.code, 0, t.stderr);
      assert.equal(t.stdout, q.stdout, `${name} ${extra.join(' ')}`);
    }
  }
});

test('info through the library: virtual size rounds up to sectors, a missing backing file is no error', async () => {
  const [top] = await collectImageInfo(`${matrix.dir}/top.qcow2`);
  assert.equal(top!['backing-filename'], 'sub/mid.qcow2');
  assert.equal(top!['full-backing-filename'], `${matrix.dir}/sub/mid.qcow2`);
  assert.equal(top!['backing-filename-format'], 'qcow2');
  const created = await qemuImgIn(matrix.dir, ['create', '-q', '-f', 'qcow2', '-u', '-b', 'gone.qcow2', '-F', 'qcow2', `${matrix.dir}/orphan.qcow2`, '1M']);
  assert.equal(created.code, 0, created.stderr);
  const [orphan] = await collectImageInfo(`${matrix.dir}/orphan.qcow2`);
  assert.equal(orphan!['full-backing-filename'], `${matrix.dir}/gone.qcow2`);
  await assert.rejects(collectImageInfo(`${matrix.dir}/orphan.qcow2`, { backingChain: true }), /Could not open '.*gone.qcow2'/);
});

test('info errors: missing file, bad --output, wrong -f; exit 1 with a message like qemu-img', async () => {
  for (const args of [['info', 'nonexistent.img'], ['info', '--output=xml', 'v3.qcow2'], ['info', '-f', 'qcow2', 'sparse.raw']]) {
    const [q, t] = await Promise.all([qemu(args), ours(['img', ...args])]);
    assert.equal(t.code, q.code, args.join(' '));
    assert.equal(t.stdout, '');
    assert.equal(t.stderr.replace(/^tsemu: /, 'qemu-img: '), q.stderr, args.join(' '));
  }
});
