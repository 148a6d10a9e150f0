import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { mustRun, requirePeer, scratchDir } from '../helpers/peers.js';
import { patternBytes } from '../helpers/pattern.js';
import { buildImageMatrix, qemuImgIn, tsemuIn, errorText } from './ops-images.js';
import { compareImages, firstDifferentSector, firstNonZeroSector } from '../../src/block/ops/compare.js';

let dir = '';
let cleanup = async () => {};

before(async () => {
  requirePeer('qemu-img');
  ({ dir, cleanup } = await scratchDir());
  await buildImageMatrix(dir);
  const at = (n: string) => path.join(dir, n);
  const data = patternBytes(3, 1, 1024 * 1024);
  await writeFile(at('r1.raw'), data);
  const changed = Buffer.from(data);
  changed[70000] ^= 0xff;
  await writeFile(at('r2.raw'), changed);
  await copyFile(at('r1.raw'), at('r1-long.raw'));
  await truncate(at('r1-long.raw'), 2 * 1024 * 1024);
  const tail = Buffer.alloc(2 * 1024 * 1024);
  tail.set(data);
  tail[1500000] = 1;
  await writeFile(at('r1-tail.raw'), tail);
  await writeFile(at('odd1.raw'), Buffer.alloc(1000));
  const odd2 = Buffer.alloc(1024);
  odd2[1010] = 7;
  await writeFile(at('odd2.raw'), odd2);
  await writeFile(at('hole1.raw'), '');
  await truncate(at('hole1.raw'), 1000);
  for (const n of ['top', 'snap', 'zlib', 'over-raw', 'v2']) {
    await mustRun(qemuImgIn(dir, ['convert', '-O', 'raw', `${n}.qcow2`, `${n}.flat`]), `convert ${n}`);
  }
  await mustRun(qemuImgIn(dir, ['convert', '-O', 'qcow2', 'r2.raw', 'r2.qcow2']), 'convert r2');
});
after(() => cleanup());


test('compare output and exit codes equal qemu-img compare', async () => {
  const cases = [
    ['r1.raw', 'r1.raw'],
    ['r1.raw', 'r2.raw'],
    ['r2.raw', 'r1.raw'],
    ['r1.raw', 'r1-long.raw'],
    ['r1-long.raw', 'r1.raw'],
    ['-s', 'r1.raw', 'r1-long.raw'],
    ['r1.raw', 'r1-tail.raw'],
    ['r1-tail.raw', 'r1.raw'],
    ['-q', 'r1.raw', 'r2.raw'],
    ['odd1.raw', 'odd2.raw'],
    ['hole1.raw', 'odd2.raw'],
    ['odd2.raw', 'hole1.raw'],
    ['-s', 'r1.raw', 'r2.raw'],
    ['r2.qcow2', 'r1.raw'],
    ['r2.qcow2', 'r2.raw'],
    ['-f', 'qcow2', '-F', 'raw', 'r2.qcow2', 'r2.raw'],
    ['-f', 'raw', 'r2.qcow2', 'r2.raw'],
    ['top.qcow2', 'top.flat'],
    ['snap.qcow2', 'snap.flat'],
    ['zlib.qcow2', 'zlib.flat'],
    ['zlib.qcow2', 'full.raw'],
    ['over-raw.qcow2', 'over-raw.flat'],
    ['over-raw.qcow2', 'sparse.raw'],
    ['v2.qcow2', 'v3.qcow2'],
    ['top.qcow2', 'sub/mid.qcow2'],
    ['sub/mid.qcow2', 'top.qcow2'],
    ['-s', 'v2.qcow2', 'v3.qcow2'],
    ['-s', 'top.qcow2', 'top.flat'],
    ['-s', 'zlib.qcow2', 'zlib.flat'],
    ['-s', 'r2.qcow2', 'r2.raw'],
    ['-s', 'over-raw.qcow2', 'over-raw.flat'],
    ['-p', 'top.qcow2', 'top.flat'],
    ['nonexistent', 'r1.raw'],
    ['r1.raw', 'nonexistent'],
    ['-T', 'bogus', 'r1.raw', 'r1.raw'],
    ['-T', 'none', '-U', 'r1.raw', 'r2.raw'],
  ];
  for (const c of cases) {
    const [q, t] = await Promise.all([qemuImgIn(dir, ['compare', ...c]), tsemuIn(dir, ['img', 'compare', ...c])]);
    const what = c.join(' ');
    assert.equal(t.code, q.code, `${what}: ${t.stderr}`);
    assert.equal(errorText(t.stderr), errorText(q.stderr), what);
    // -p draws a bar whose intermediate figures depend on the walk; compare the final lines.
    const lines = (s: string) => (c.includes('-p') ? s.split(/[\r\n]+/).filter((l) => !l.includes('/100%')) : [s]);
    assert.deepEqual(lines(t.stdout), lines(q.stdout), what);
  }
});

test('compare through the library reports exit code and messages', async () => {
  const r = await compareImages({ filename1: `${dir}/r1.raw`, filename2: `${dir}/r1-tail.raw` });
  assert.equal(r.code, 1);
  assert.deepEqual(r.messages, ['Warning: Image size mismatch!', 'Content mismatch at offset 1499648!']);
  const missing = await compareImages({ filename1: `${dir}/r1.raw`, filename2: `${dir}/none` });
  assert.equal(missing.code, 2);
  assert.match(missing.error ?? '', /Could not open '.*none'/);
});

test('mismatch offsets are sector granular', () => {
  const a = new Uint8Array(2048);
  const b = new Uint8Array(2048);
  assert.equal(firstDifferentSector(a, b), -1);
  b[1500] = 1;
  assert.equal(firstDifferentSector(a, b), 1024);
  assert.equal(firstNonZeroSector(b), 1024);
  assert.equal(firstNonZeroSector(new Uint8Array(700)), -1);
  const c = new Uint8Array(700);
  c[699] = 1;
  assert.equal(firstNonZeroSector(c), 512);
});
