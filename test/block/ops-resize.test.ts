import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { mustRun, qemuIo, requirePeer, scratchDir } from '../helpers/peers.js';
import { qemuImgIn, tsemuIn, errorText } from './ops-images.js';
import { resizeTarget } from '../../src/block/ops/resize.js';

let dir = '';
let cleanup = async () => {};

before(async () => {
  requirePeer('qemu-img');
  ({ dir, cleanup } = await scratchDir());
  await mustRun(qemuImgIn(dir, ['create', '-q', '-f', 'raw', 'base.raw', '4M']), 'create raw');
  await mustRun(qemuIo(['-f', 'raw', '-c', 'write -P 9 0 3M', path.join(dir, 'base.raw')]), 'write raw');
  for (const [name, opts] of [['base-v3.qcow2', ''], ['base-v2.qcow2', 'compat=0.10'], ['base-4k.qcow2', 'cluster_size=4k']]) {
    await mustRun(qemuImgIn(dir, ['create', '-q', '-f', 'qcow2', ...(opts ? ['-o', opts] : []), name!, '4M']), `create ${name}`);
    await mustRun(qemuIo(['-c', 'write -P 7 0 3M', path.join(dir, name!)]), `write ${name}`);
  }
});
after(() => cleanup());


/** `qemu-img info` JSON without the fields that name or measure the file itself. */
async function infoOf(file: string): Promise<Record<string, unknown>> {
  const r = await mustRun(qemuImgIn(dir, ['info', '--output=json', '-U', file]), `info ${file}`);
  const info = JSON.parse(r.stdout) as Record<string, unknown>;
  delete info.filename;
  delete info['actual-size'];
  return info;
}

const CASES: string[][] = [
  ['+1M'],
  ['--', '-512K'],
  ['--shrink', '--', '-512K'],
  ['--shrink', '1M'],
  ['0'],
  ['--shrink', '--', '-5M'],
  ['2Q'],
  ['--preallocation=full', '1M'],
  ['--preallocation=bogus', '8M'],
  ['--preallocation=falloc', '8M'],
  ['--preallocation=full', '8M'],
  ['--preallocation=metadata', '8M'],
  ['-q', '5G'],
  ['+0'],
];

test('resize: same messages, exit codes and resulting image as qemu-img resize', async () => {
  for (const base of ['base.raw', 'base-v3.qcow2', 'base-v2.qcow2', 'base-4k.qcow2']) {
    const fmt = base.endsWith('.raw') ? 'raw' : 'qcow2';
    for (const c of CASES) {
      if (fmt === 'raw' && c.includes('--preallocation=metadata')) continue;
      const mine = `t-${base}`;
      const theirs = `q-${base}`;
      await copyFile(path.join(dir, base), path.join(dir, mine));
      await copyFile(path.join(dir, base), path.join(dir, theirs));
      const flags = c.slice(0, -1).filter((a) => a !== '--');
      const size = c[c.length - 1]!;
      const dashdash = c.includes('--') ? ['--'] : [];
      const [q, t] = await Promise.all([
        qemuImgIn(dir, ['resize', '-f', fmt, ...flags, theirs, ...dashdash, size]),
        tsemuIn(dir, ['img', 'resize', '-f', fmt, ...flags, mine, ...dashdash, size]),
      ]);
      const what = `${base} ${c.join(' ')}`;
      assert.equal(t.code, q.code, `${what}: ${t.stderr}`);
      assert.equal(t.stdout, q.stdout, what);
      assert.equal(errorText(t.stderr), errorText(q.stderr), what);
      assert.equal((await stat(path.join(dir, mine))).size > 0, true);
      assert.deepEqual(await infoOf(mine), await infoOf(theirs), what);
      const same = await qemuImgIn(dir, ['compare', '-U', '-f', fmt, '-F', fmt, mine, theirs]);
      assert.equal(same.code, 0, `${what}: ${same.stdout}${same.stderr}`);
      if (fmt === 'qcow2') {
        const check = await qemuImgIn(dir, ['check', '-U', mine]);
        assert.equal(check.code, 0, `${what}: ${check.stdout}`);
      } else {
        assert.equal((await stat(path.join(dir, mine))).size, (await stat(path.join(dir, theirs))).size, what);
      }
    }
  }
});

test('resize arguments: absolute, relative, suffixes', () => {
  assert.equal(resizeTarget('1M', 5), 1048576);
  assert.equal(resizeTarget('+1k', 1000), 2024);
  assert.equal(resizeTarget('-1k', 4096), 3072);
  assert.throws(() => resizeTarget('+x', 0), /expects a non-negative number/);
});

test('resize needs a file name and a size', async () => {
  const t = await tsemuIn(dir, ['img', 'resize', 'base.raw']);
  assert.equal(t.code, 1);
  assert.match(t.stderr, /Expecting image file name and size/);
});
