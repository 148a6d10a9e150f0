import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { mustRun, qemuImg, qemuIo, scratchDir, tsemu } from '../helpers/peers.js';

/** old and new backing files that differ in places, and an overlay of old with data of its own. */
async function rebaseInputs(dir: string, tag: string): Promise<{ top: string; oldB: string; newB: string }> {
  const oldB = path.join(dir, `${tag}-old.qcow2`);
  const newB = path.join(dir, `${tag}-new.qcow2`);
  const top = path.join(dir, `${tag}-top.qcow2`);
  await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', oldB, '4M']), 'create old');
  await mustRun(qemuIo(['-c', 'write -P 1 0 1M', '-c', 'write -P 2 2M 512k', oldB]), 'write old');
  await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', newB, '4M']), 'create new');
  await mustRun(qemuIo(['-c', 'write -P 1 0 512k', '-c', 'write -P 3 3M 64k', newB]), 'write new');
  await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', '-b', path.basename(oldB), '-F', 'qcow2', top]), 'create top');
  await mustRun(qemuIo(['-c', 'write -P 9 64k 64k', top]), 'write top');
  return { top, oldB, newB };
}

async function backingOf(file: string): Promise<string | undefined> {
  const r = await mustRun(qemuImg(['info', '--output=json', file]), 'qemu-img info');
  return (JSON.parse(r.stdout) as { 'backing-filename'?: string })['backing-filename'];
}

test('safe rebase keeps the content and matches what qemu-img rebase produces', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const q = await rebaseInputs(dir, 'q');
    const t = await rebaseInputs(dir, 't');
    const before = path.join(dir, 'before.raw');
    await mustRun(qemuImg(['convert', '-O', 'raw', t.top, before]), 'snapshot content');
    await mustRun(qemuImg(['rebase', '-b', path.basename(q.newB), '-F', 'qcow2', q.top]), 'qemu-img rebase');
    const r = await tsemu(['img', 'rebase', '-b', path.basename(t.newB), '-F', 'qcow2', t.top]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await backingOf(t.top), path.basename(t.newB));
    await mustRun(qemuImg(['compare', before, t.top]), 'content unchanged');
    await mustRun(qemuImg(['compare', q.top, t.top]), 'same as qemu-img');
    await mustRun(qemuImg(['check', t.top]), 'qemu-img check');
    // Same clusters copied into the overlay as qemu-img copies.
    const mapOf = async (f: string) =>
      (JSON.parse((await mustRun(qemuImg(['map', '--output=json', f]), 'map')).stdout) as { start: number; length: number; depth: number }[])
        .map((e) => `${e.start}+${e.length}@${e.depth}`);
    assert.deepEqual(await mapOf(t.top), await mapOf(q.top));
  } finally {
    await cleanup();
  }
});

test('rebase -b "" makes the image standalone with the same content', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const t = await rebaseInputs(dir, 't');
    const before = path.join(dir, 'before.raw');
    await mustRun(qemuImg(['convert', '-O', 'raw', t.top, before]), 'snapshot content');
    const r = await tsemu(['img', 'rebase', '-p', '-b', '', t.top]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\(100\.00\/100%\)\r\n$/);
    assert.equal(await backingOf(t.top), undefined);
    await mustRun(qemuImg(['compare', before, t.top]), 'content unchanged');
    await mustRun(qemuImg(['check', t.top]), 'qemu-img check');
  } finally {
    await cleanup();
  }
});

test('rebase -u only changes the name', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const t = await rebaseInputs(dir, 't');
    const r = await tsemu(['img', 'rebase', '-u', '-b', path.basename(t.newB), '-F', 'qcow2', t.top]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await backingOf(t.top), path.basename(t.newB));
    const map = JSON.parse((await mustRun(qemuImg(['map', '--output=json', t.top]), 'map')).stdout) as { depth: number; data: boolean }[];
    assert.equal(map.filter((e) => e.depth === 0 && e.data).length, 1, 'only the overlay cluster written by the test');
  } finally {
    await cleanup();
  }
});

test('rebase errors: no -b, missing backing format, missing new backing, raw image', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const t = await rebaseInputs(dir, 't');
    const raw = path.join(dir, 'x.raw');
    await mustRun(qemuImg(['create', '-q', '-f', 'raw', raw, '1M']), 'create raw');
    const cases: [string[], RegExp][] = [
      [[t.top], /Must specify backing file \(-b\) or use unsafe mode \(-u\)/],
      [['-b', path.basename(t.newB), t.top], /backing format must be specified/],
      [['-b', 'nope.qcow2', '-F', 'qcow2', t.top], /Could not open new backing file 'nope.qcow2'/],
      [['-b', path.basename(t.top), '-F', 'qcow2', t.top], /Failed to get shared "write" lock/],
      [['-u', '-b', 'y', '-F', 'raw', '-f', 'raw', raw], /Could not change the backing file to 'y': Operation not supported/],
    ];
    for (const [args, message] of cases) {
      const r = await tsemu(['img', 'rebase', ...args]);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    assert.equal(await backingOf(t.top), path.basename(t.oldB));
  } finally {
    await cleanup();
  }
});
