import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { mustRun, qemuImg, qemuIo, scratchDir, tsemu } from '../helpers/peers.js';

async function image(dir: string, name: string, opts: string, io: string[], extra: string[] = []): Promise<string> {
  const img = path.join(dir, name);
  await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', '-o', opts, ...extra, img, '8M']), 'create');
  for (const c of io) await mustRun(qemuIo(['-c', c, img]), `qemu-io ${c}`);
  return img;
}

async function amend(img: string, opts: string) {
  return tsemu(['img', 'amend', '-f', 'qcow2', '-o', opts, img]);
}

async function info(img: string): Promise<Record<string, unknown>> {
  const r = await mustRun(qemuImg(['info', '--output=json', img]), 'qemu-img info');
  return JSON.parse(r.stdout)['format-specific'].data;
}

async function assertClean(img: string): Promise<void> {
  const r = await qemuImg(['check', img]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
}

/** The guest-visible map without host offsets (they may differ between tools). */
async function mapOf(img: string): Promise<string> {
  const r = await mustRun(qemuImg(['map', '--output=json', img]), 'qemu-img map');
  return r.stdout.replace(/, "offset": \d+/g, '');
}

test('refcount_bits and lazy_refcounts change in place; content and snapshots survive', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const img = await image(dir, 'a.qcow2', 'cluster_size=4k', ['write -P 1 0 64k', 'write -z 1M 64k', 'write -c -P 2 2M 64k']);
    await mustRun(qemuImg(['snapshot', '-c', 's1', img]), 'snapshot');
    await mustRun(qemuIo(['-c', 'write -P 3 0 4k', img]), 'write');
    const ref = path.join(dir, 'ref.qcow2');
    await copyFile(img, ref);
    for (const bits of [64, 32, 8, 16]) {
      const r = await amend(img, `refcount_bits=${bits}`);
      assert.equal(r.code, 0, r.stderr);
      await assertClean(img);
      assert.equal((await info(img))['refcount-bits'], bits);
    }
    assert.equal((await amend(img, 'lazy_refcounts=on')).code, 0);
    assert.equal((await info(img))['lazy-refcounts'], true);
    await assertClean(img);
    assert.equal((await amend(img, 'lazy_refcounts=off')).code, 0);
    assert.equal((await info(img))['lazy-refcounts'], false);
    await mustRun(qemuImg(['compare', img, ref]), 'compare');
    await mustRun(qemuImg(['snapshot', '-a', 's1', img]), 'apply');
    await mustRun(qemuImg(['snapshot', '-a', 's1', ref]), 'apply ref');
    await mustRun(qemuImg(['compare', img, ref]), 'compare snapshot state');
  } finally {
    await cleanup();
  }
});

test('a refcount width too narrow for the image is refused with qemu-img\'s message', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const img = await image(dir, 'n.qcow2', 'cluster_size=4k', ['write 0 4k']);
    await mustRun(qemuImg(['snapshot', '-c', 's', img]), 'snapshot');
    const copy = path.join(dir, 'copy.qcow2');
    await copyFile(img, copy);
    const t = await amend(img, 'refcount_bits=1');
    const q = await qemuImg(['amend', '-o', 'refcount_bits=1', copy]);
    assert.equal(t.code, 1);
    assert.equal(t.stderr, q.stderr.replace('qemu-img:', 'tsemu:'));
    await assertClean(img);
  } finally {
    await cleanup();
  }
});

test('compat=0.10 turns zero clusters into what v2 holds, like qemu-img; compat=1.1 upgrades back', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const base = await image(dir, 'base.qcow2', 'cluster_size=64k', ['write -P 9 0 4M']);
    const cases = [
      await image(dir, 'plain.qcow2', 'cluster_size=64k', ['write -P 1 0 64k', 'write -z 1M 64k', 'write -P 2 2M 64k', 'write -z 2M 64k']),
      await image(dir, 'overlay.qcow2', 'cluster_size=4k', ['write -z 0 64k', 'write -P 3 1M 4k'], ['-b', base, '-F', 'qcow2']),
    ];
    await mustRun(qemuImg(['snapshot', '-c', 's', cases[1]!]), 'snapshot');
    await mustRun(qemuIo(['-c', 'write -z 8k 8k', cases[1]!]), 'zero write');
    for (const img of cases) {
      const theirs = `${img}.qemu`;
      await copyFile(img, theirs);
      await mustRun(qemuImg(['amend', '-o', 'compat=0.10', theirs]), 'qemu-img amend');
      const r = await amend(img, 'compat=0.10');
      assert.equal(r.code, 0, r.stderr);
      await assertClean(img);
      assert.equal((await info(img)).compat, '0.10');
      assert.equal(await mapOf(img), await mapOf(theirs));
      await mustRun(qemuImg(['compare', img, theirs]), 'compare');
      assert.equal((await amend(img, 'compat=1.1')).code, 0);
      await assertClean(img);
      assert.equal((await info(img)).compat, '1.1');
      await mustRun(qemuImg(['compare', img, theirs]), 'compare after upgrade');
    }
  } finally {
    await cleanup();
  }
});

test('options that cannot be amended get qemu-img\'s messages', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const img = await image(dir, 'e.qcow2', 'cluster_size=64k', []);
    const ext = await image(dir, 'x.qcow2', 'extended_l2=on', []);
    const narrow = await image(dir, 'r4.qcow2', 'refcount_bits=4', []);
    const cases: Array<[string, string]> = [
      [img, 'cluster_size=4k'], [img, 'extended_l2=on'], [img, 'compression_type=zstd'], [img, 'nosuch=1'],
      [img, 'compat=2'], [img, 'refcount_bits=3'], [img, 'lazy_refcounts=maybe'], [img, 'backing_file=b.raw'],
      [img, 'data_file=x'], [img, 'data_file_raw=on'], [img, 'encrypt.new-secret=x'],
      [img, 'compat=0.10,lazy_refcounts=on'], [narrow, 'compat=0.10'], [narrow, 'compat=0.10,refcount_bits=8'],
      [ext, 'compat=0.10'],
    ];
    for (const [file, opts] of cases) {
      const t = await amend(file, opts);
      const q = await qemuImg(['amend', '-f', 'qcow2', '-o', opts, file]);
      assert.equal(q.code, 1, `qemu-img amend -o ${opts}`);
      assert.equal(t.code, 1, `tsemu amend -o ${opts}`);
      assert.equal(t.stderr, q.stderr.replace('qemu-img:', 'tsemu:'), opts);
    }
    const none = await tsemu(['img', 'amend', img]);
    assert.match(none.stderr, /Must specify options \(-o\)/);
    const help = await tsemu(['img', 'amend', '-f', 'qcow2', '-o', 'help', img]);
    assert.match(help.stdout, /^Amend options for 'qcow2':\n {2}backing_file=<str> {5}- File name of a base image\n/);
    const raw = path.join(dir, 'r.img');
    await mustRun(qemuImg(['create', '-q', '-f', 'raw', raw, '1M']), 'create raw');
    const rr = await tsemu(['img', 'amend', '-f', 'raw', '-o', 'size=2M', raw]);
    assert.equal(rr.stderr, "tsemu: Format driver 'raw' does not support option amendment\n");
  } finally {
    await cleanup();
  }
});
