import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { mustRun, qemuImg, qemuIo, scratchDir, tsemu } from '../helpers/peers.js';

async function image(dir: string, name: string, opts = 'cluster_size=64k'): Promise<string> {
  const img = path.join(dir, name);
  await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', '-o', opts, img, '8M']), 'create');
  return img;
}

async function io(img: string, ...cmds: string[]): Promise<void> {
  for (const c of cmds) await mustRun(qemuIo(['-c', c, img]), `qemu-io ${c}`);
}

async function snap(img: string, ...args: string[]) {
  return tsemu(['img', 'snapshot', '-f', 'qcow2', ...args, img]);
}

/** qemu-img check says consistent, and qemu-img snapshot -l lists what tsemu lists. */
async function assertConsistent(img: string): Promise<void> {
  const check = await qemuImg(['check', img]);
  assert.equal(check.code, 0, `qemu-img check: ${check.stdout}${check.stderr}`);
  assert.equal(check.stderr, '');
  const mine = await mustRun(snap(img, '-l'), 'tsemu snapshot -l');
  const theirs = await mustRun(qemuImg(['snapshot', '-l', img]), 'qemu-img snapshot -l');
  assert.equal(mine.stdout, theirs.stdout);
}

test('create, apply and delete keep the image consistent and the data of each state', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const img = await image(dir, 's.qcow2');
    await io(img, 'write -P 1 0 128k', 'write -c -P 2 1M 64k', 'write -z 2M 64k');
    assert.equal((await snap(img, '-c', 'first')).code, 0);
    await assertConsistent(img);
    await io(img, 'write -P 3 0 64k', 'write -P 4 3M 64k');
    assert.equal((await snap(img, '-c', 'second')).code, 0);
    await assertConsistent(img);
    await io(img, 'write -P 5 64k 64k');
    assert.equal((await snap(img, '-a', 'first')).code, 0);
    await assertConsistent(img);
    await io(img, 'read -P 1 0 128k', 'read -P 2 1M 64k', 'read -P 0 3M 64k');
    assert.equal((await snap(img, '-a', '2')).code, 0); // by ID
    await assertConsistent(img);
    await io(img, 'read -P 3 0 64k', 'read -P 1 64k 64k', 'read -P 4 3M 64k');
    assert.equal((await snap(img, '-d', 'first')).code, 0);
    await assertConsistent(img);
    assert.equal((await snap(img, '-d', 'second')).code, 0);
    await assertConsistent(img);
    assert.equal((await snap(img, '-l')).stdout, '');
    await io(img, 'read -P 3 0 64k', 'read -P 2 1M 64k');
  } finally {
    await cleanup();
  }
});

test('snapshots made by qemu-img apply and delete in tsemu, and tsemu\'s apply in qemu-img', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    for (const opts of ['compat=0.10', 'refcount_bits=4,cluster_size=4k', 'extended_l2=on,cluster_size=32k']) {
      const img = await image(dir, 'q.qcow2', opts);
      await io(img, 'write -P 7 0 96k');
      await mustRun(qemuImg(['snapshot', '-c', 'theirs', img]), 'qemu-img snapshot -c');
      await io(img, 'write -P 8 32k 32k');
      await mustRun(snap(img, '-c', 'mine'), 'tsemu snapshot -c');
      await assertConsistent(img);
      await mustRun(snap(img, '-a', 'theirs'), 'tsemu snapshot -a');
      await assertConsistent(img);
      await io(img, 'read -P 7 0 96k');
      await mustRun(qemuImg(['snapshot', '-a', 'mine', img]), 'qemu-img snapshot -a');
      await io(img, 'read -P 7 0 32k', 'read -P 8 32k 32k');
      await mustRun(snap(img, '-d', 'theirs'), 'tsemu snapshot -d');
      await assertConsistent(img);
      await mustRun(qemuImg(['snapshot', '-d', 'mine', img]), 'qemu-img snapshot -d');
      assert.equal((await qemuImg(['check', img])).code, 0, opts);
      await io(img, 'read -P 8 32k 32k');
    }
  } finally {
    await cleanup();
  }
});

test('a refcount that does not fit refcount_bits is a clear error and leaves the image untouched', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const img = await image(dir, 'o.qcow2', 'refcount_bits=1');
    await io(img, 'write 0 64k');
    const r = await snap(img, '-c', 's1');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^tsemu: Could not create snapshot 's1': refcount overflow: cluster \d+ would need a refcount of 2, more than refcount_bits=1/);
    const check = await qemuImg(['check', img]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.equal((await snap(img, '-l')).stdout, '');
  } finally {
    await cleanup();
  }
});

test('errors read like qemu-img\'s', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const img = await image(dir, 'e.qcow2');
    const a = await snap(img, '-a', 'nosuch');
    assert.equal(a.code, 1);
    assert.equal(a.stderr, "tsemu: Could not apply snapshot 'nosuch': Failed to load snapshot: No such file or directory\n");
    const d = await snap(img, '-d', 'nosuch');
    assert.equal(d.stderr, "tsemu: Could not delete snapshot 'nosuch': snapshot not found\n");
    const mix = await snap(img, '-l', '-c', 'x');
    assert.equal(mix.code, 1);
    assert.match(mix.stderr, /Cannot mix '-l', '-a', '-c', '-d'/);
    const missing = await tsemu(['img', 'snapshot', '-l', path.join(dir, 'none.qcow2')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Could not open '.*none\.qcow2': .*No such file or directory/);
    const raw = path.join(dir, 'r.img');
    await mustRun(qemuImg(['create', '-q', '-f', 'raw', raw, '1M']), 'create raw');
    assert.equal((await tsemu(['img', 'snapshot', '-f', 'raw', '-l', raw])).stdout, '');
    const rc = await tsemu(['img', 'snapshot', '-f', 'raw', '-c', 'x', raw]);
    assert.equal(rc.stderr, "tsemu: Could not create snapshot 'x': Operation not supported\n");
  } finally {
    await cleanup();
  }
});
