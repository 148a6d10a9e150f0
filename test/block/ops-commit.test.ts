import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { mustRun, qemuImg, qemuIo, scratchDir, tsemu } from '../helpers/peers.js';

/** base <- mid <- top, top larger than the others, with data and a zero cluster in the middle layer. */
async function chain(dir: string, tag: string): Promise<{ base: string; mid: string; top: string }> {
  const base = path.join(dir, `${tag}-base.qcow2`);
  const mid = path.join(dir, `${tag}-mid.qcow2`);
  const top = path.join(dir, `${tag}-top.qcow2`);
  await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', base, '4M']), 'create base');
  await mustRun(qemuIo(['-c', 'write -P 1 0 1M', base]), 'write base');
  await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', '-b', path.basename(base), '-F', 'qcow2', mid]), 'create mid');
  await mustRun(qemuIo(['-c', 'write -P 2 512k 1M', '-c', 'write -z 768k 64k', mid]), 'write mid');
  await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', '-b', path.basename(mid), '-F', 'qcow2', top, '6M']), 'create top');
  await mustRun(qemuIo(['-c', 'write -P 3 1M 64k', '-c', 'write -P 4 5M 64k', top]), 'write top');
  return { base, mid, top };
}

test('commit -b base matches qemu-img commit -b (base grows, top untouched)', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const q = await chain(dir, 'q');
    const t = await chain(dir, 't');
    await mustRun(qemuImg(['commit', '-b', q.base, q.top]), 'qemu-img commit');
    const r = await tsemu(['img', 'commit', '-b', t.base, t.top]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'Image committed.\n');
    await mustRun(qemuImg(['compare', q.base, t.base]), 'bases equal');
    await mustRun(qemuImg(['compare', q.top, t.top]), 'tops equal');
    await mustRun(qemuImg(['check', t.base]), 'qemu-img check');
    const info = JSON.parse((await mustRun(qemuImg(['info', '--output=json', t.base]), 'info')).stdout) as { 'virtual-size': number };
    assert.equal(info['virtual-size'], 6 << 20);
  } finally {
    await cleanup();
  }
});

test('commit -d into the immediate backing file matches qemu-img commit -d', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const q = await chain(dir, 'q');
    const t = await chain(dir, 't');
    await mustRun(qemuImg(['commit', '-d', q.top]), 'qemu-img commit');
    const r = await tsemu(['img', 'commit', '-q', '-d', t.top]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    await mustRun(qemuImg(['compare', '-f', 'qcow2', '-F', 'qcow2', q.mid, t.mid]), 'mids equal');
    await mustRun(qemuImg(['compare', q.top, t.top]), 'tops equal');
    await mustRun(qemuImg(['check', t.mid]), 'qemu-img check');
  } finally {
    await cleanup();
  }
});

test('commit errors: no backing file, base not in the chain', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const t = await chain(dir, 't');
    let r = await tsemu(['img', 'commit', t.base]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Image does not have a backing file/);
    r = await tsemu(['img', 'commit', '-b', t.top, t.top]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Did not find '.*t-top.qcow2' in the backing chain of '.*t-top.qcow2'/);
  } finally {
    await cleanup();
  }
});

test('commit into the immediate backing file: the backing file gets the data, the overlay keeps its content', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const q = await chain(dir, 'q');
    const t = await chain(dir, 't');
    await mustRun(qemuImg(['commit', q.top]), 'qemu-img commit');
    const r = await tsemu(['img', 'commit', '-p', t.top]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\(100\.00\/100%\)\r\nImage committed\.\n$/);
    await mustRun(qemuImg(['compare', '-f', 'qcow2', '-F', 'qcow2', q.mid, t.mid]), 'mids equal');
    await mustRun(qemuImg(['compare', q.top, t.top]), 'tops equal');
    await mustRun(qemuImg(['check', t.mid]), 'qemu-img check mid');
    await mustRun(qemuImg(['check', t.top]), 'qemu-img check top');
  } finally {
    await cleanup();
  }
});

/** The ranges an image defines itself (depth 0 in qemu-img map's JSON). */
async function ownRanges(image: string): Promise<unknown[]> {
  const out = (await mustRun(qemuImg(['map', '--output=json', image]), 'qemu-img map')).stdout;
  return (JSON.parse(out) as { start: number; length: number; depth: number; zero: boolean; data: boolean }[])
    .filter((e) => e.depth === 0)
    .map((e) => ({ start: e.start, length: e.length, zero: e.zero, data: e.data }));
}

test('commit without -d empties a qcow2 overlay as qemu-img does (also when a snapshot shares its tables)', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    for (const withSnapshot of [false, true]) {
      const q = await chain(dir, `q${withSnapshot}`);
      const t = await chain(dir, `t${withSnapshot}`);
      if (withSnapshot) {
        for (const top of [q.top, t.top]) {
          await mustRun(qemuImg(['snapshot', '-c', 'before', top]), 'snapshot');
          await mustRun(qemuIo(['-c', 'write -P 5 2M 64k', '-c', 'write -c -P 6 3M 64k', top]), 'write after snapshot');
        }
      }
      await mustRun(qemuImg(['commit', q.top]), 'qemu-img commit');
      const r = await tsemu(['img', 'commit', '-q', t.top]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await ownRanges(t.top), await ownRanges(q.top));
      assert.deepEqual(await ownRanges(t.top), []);
      await mustRun(qemuImg(['compare', q.top, t.top]), 'tops equal');
      await mustRun(qemuImg(['check', t.top]), 'qemu-img check top');
      if (withSnapshot) {
        const q0 = path.join(dir, 'q0.raw');
        const t0 = path.join(dir, 't0.raw');
        await mustRun(qemuImg(['convert', '-l', 'before', '-O', 'raw', q.top, q0]), 'convert q snapshot');
        await mustRun(qemuImg(['convert', '-l', 'before', '-O', 'raw', t.top, t0]), 'convert t snapshot');
        await mustRun(qemuImg(['compare', '-f', 'raw', '-F', 'raw', q0, t0]), 'snapshots keep their content');
      }
    }
  } finally {
    await cleanup();
  }
});
