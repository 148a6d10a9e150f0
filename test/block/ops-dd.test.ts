import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseDdOperands } from '../../src/block/ops/dd.js';
import { mustRun, qemuImg, scratchDir, tsemu } from '../helpers/peers.js';

test('dd operands: defaults, sizes with suffixes, and qemu-img messages for bad ones', () => {
  assert.deepEqual(parseDdOperands(['if=a', 'of=b']), { input: 'a', output: 'b', bs: 512, count: null, skip: 0 });
  assert.deepEqual(parseDdOperands(['bs=1M', 'count=2', 'skip=1k', 'if=a', 'of=b']), {
    input: 'a', output: 'b', bs: 1 << 20, count: 2, skip: 1024,
  });
  assert.throws(() => parseDdOperands(['if=a', 'of=b', 'bs=0']), /Invalid bs specified. Must be between 1 and 2147483647./);
  assert.throws(() => parseDdOperands(['if=a', 'of=b', 'foo=3']), /unrecognized operand foo=3/);
  assert.throws(() => parseDdOperands(['if=a']), /Must specify both input and output files/);
  assert.throws(() => parseDdOperands(['if=a', 'of=b', 'count=x']), /invalid number/);
});

test('dd produces the same output as qemu-img dd (count counts from the start of the input)', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const src = path.join(dir, 'src.raw');
    await writeFile(src, Buffer.concat([randomBytes(3 << 20), Buffer.alloc(2 << 20), randomBytes(1 << 20)]));
    const cases = [
      ['bs=1M', 'count=2', 'skip=1'],
      ['bs=1M', 'skip=3'],
      ['bs=64k', 'count=5'],
      ['bs=4k', 'count=100000'],
      [],
    ];
    for (const [i, ops] of cases.entries()) {
      const q = path.join(dir, `q${i}.raw`);
      const t = path.join(dir, `t${i}.raw`);
      await mustRun(qemuImg(['dd', '-f', 'raw', '-O', 'raw', ...ops, `if=${src}`, `of=${q}`]), 'qemu-img dd');
      const r = await tsemu(['img', 'dd', '-f', 'raw', '-O', 'raw', ...ops, `if=${src}`, `of=${t}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await readFile(t), await readFile(q), ops.join(' '));
    }
  } finally {
    await cleanup();
  }
});

test('dd into qcow2 passes qemu-img check; skipping past the end is an error', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const src = path.join(dir, 'src.raw');
    await writeFile(src, randomBytes(2 << 20));
    const q = path.join(dir, 'out.qcow2');
    const r = await tsemu(['img', 'dd', '-O', 'qcow2', 'bs=512k', 'skip=1', `if=${src}`, `of=${q}`]);
    assert.equal(r.code, 0, r.stderr);
    await mustRun(qemuImg(['check', q]), 'qemu-img check');
    const back = path.join(dir, 'back.raw');
    await mustRun(qemuImg(['convert', '-O', 'raw', q, back]), 'qemu-img convert');
    assert.deepEqual(await readFile(back), (await readFile(src)).subarray(512 << 10));

    const bad = await tsemu(['img', 'dd', 'bs=1M', 'skip=20', `if=${src}`, `of=${path.join(dir, 'x.raw')}`]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /cannot skip to specified offset/);
    assert.equal(existsSync(path.join(dir, 'x.raw')), false);
  } finally {
    await cleanup();
  }
});
