import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, open } from 'node:fs/promises';
import path from 'node:path';
import { mustRun, qemuImg, qemuIo, scratchDir, tsemu, type RunResult } from '../helpers/peers.js';

/** A qcow2 image made by qemu-img/qemu-io. */
async function makeImage(dir: string, name: string, opts: string, io: string[]): Promise<string> {
  const img = path.join(dir, name);
  await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', '-o', opts, img, '10M']), 'qemu-img create');
  for (const c of io) await mustRun(qemuIo(['-c', c, img]), `qemu-io ${c}`);
  return img;
}

async function readU64(file: string, offset: number): Promise<number> {
  const fh = await open(file, 'r');
  try {
    const b = Buffer.alloc(8);
    await fh.read(b, 0, 8, offset);
    return Number(b.readBigUInt64BE(0));
  } finally {
    await fh.close();
  }
}

async function poke(file: string, offset: number, bytes: Buffer): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    await fh.write(bytes, 0, bytes.length, offset);
  } finally {
    await fh.close();
  }
}

/** Offset of the first refcount block (16-bit refcounts). */
async function firstRefblock(file: string): Promise<number> {
  return readU64(file, await readU64(file, 48));
}

async function setRefcount16(file: string, cluster: number, value: number): Promise<void> {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(value);
  await poke(file, (await firstRefblock(file)) + cluster * 2, b);
}

/** Offset of the first L2 table of the active L1. */
async function firstL2(file: string): Promise<number> {
  return (await readU64(file, await readU64(file, 40))) % 2 ** 56;
}

function sameRun(t: RunResult, q: RunResult, what: string): void {
  assert.equal(t.stdout, q.stdout, `${what}: stdout`);
  assert.equal(t.stderr, q.stderr, `${what}: stderr`);
  assert.equal(t.code, q.code, `${what}: exit code`);
}

/** Runs `img check ARGS` in both tools on two copies of `img` and asserts identical output. */
async function compareCheck(img: string, args: string[]): Promise<{ t: RunResult; q: RunResult; mine: string; theirs: string }> {
  const mine = `${img}.tsemu`;
  const theirs = `${img}.qemu`;
  await copyFile(img, mine);
  await copyFile(img, theirs);
  const t = await tsemu(['img', 'check', '-f', 'qcow2', ...args, mine]);
  const q = await qemuImg(['check', '-f', 'qcow2', ...args, theirs]);
  sameRun(
    { ...t, stdout: t.stdout.replaceAll(mine, 'IMG'), stderr: t.stderr.replaceAll(mine, 'IMG') },
    { ...q, stdout: q.stdout.replaceAll(theirs, 'IMG'), stderr: q.stderr.replaceAll(theirs, 'IMG') },
    `check ${args.join(' ')}`,
  );
  return { t, q, mine, theirs };
}

test('a consistent image with compressed and fragmented clusters reports like qemu-img (human and JSON)', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const img = await makeImage(dir, 'c.qcow2', 'cluster_size=4k', [
      'write -c 0 4k', 'write 4M 4k', 'write 8k 4k', 'write 2M 4k', 'write 4k 4k',
    ]);
    const { t } = await compareCheck(img, []);
    assert.equal(t.code, 0);
    assert.match(t.stdout, /No errors were found on the image\.\n5\/2560 = 0\.20% allocated, 40\.00% fragmented, 20\.00% compressed clusters\n/);
    const j = await compareCheck(img, ['--output=json']);
    assert.deepEqual(Object.keys(JSON.parse(j.t.stdout)), [
      'image-end-offset', 'compressed-clusters', 'total-clusters', 'check-errors', 'allocated-clusters',
      'filename', 'format', 'fragmented-clusters',
    ]);
    await compareCheck(img, ['-q']);
  } finally {
    await cleanup();
  }
});

test('leaks and OFLAG_COPIED errors: same findings, summary and exit codes; -r leaks and -r all repair them', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const img = await makeImage(dir, 'l.qcow2', 'cluster_size=64k', ['write 0 64k', 'write 1M 64k']);
    await setRefcount16(img, 4, 2); // the L2 table: leaked reference, and its L1 entry's COPIED bit is now wrong
    const plain = await compareCheck(img, []);
    assert.equal(plain.t.code, 2);
    assert.match(plain.t.stderr, /^Leaked cluster 4 refcount=2 reference=1\nERROR OFLAG_COPIED L2 cluster: l1_index=0 l1_entry=8000000000040000 refcount=2\n$/);
    const json = await compareCheck(img, ['--output=json']);
    assert.equal(JSON.parse(json.t.stdout).leaks, 1);
    for (const mode of ['leaks', 'all']) {
      const r = await compareCheck(img, ['-r', mode]);
      assert.equal(r.t.code, 0);
      assert.match(r.t.stdout, /The following inconsistencies were found and repaired:\n\n {4}1 leaked clusters\n/);
      assert.equal((await qemuImg(['check', r.mine])).code, 0);
    }
    const leakOnly = await makeImage(dir, 'leak.qcow2', 'cluster_size=64k', ['write 0 64k']);
    await setRefcount16(leakOnly, 0, 2); // the header cluster: a leak and nothing else
    const r = await compareCheck(leakOnly, []);
    assert.equal(r.t.code, 3);
    const rj = await compareCheck(leakOnly, ['--output=json', '-r', 'leaks']);
    assert.equal(JSON.parse(rj.t.stdout)['leaks-fixed'], 1);
  } finally {
    await cleanup();
  }
});

test('a referenced cluster with refcount 0 and an L2 entry far past the end: -r all rebuilds the refcount structure', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const img = await makeImage(dir, 'z.qcow2', 'cluster_size=64k', ['write 0 64k', 'write 1M 64k']);
    await setRefcount16(img, 5, 0);
    const entry = Buffer.alloc(8);
    entry.writeBigUInt64BE((1n << 63n) | (100n * 65536n));
    await poke(img, (await firstL2(img)) + 5 * 8, entry);
    const plain = await compareCheck(img, []);
    assert.equal(plain.t.code, 2);
    assert.match(plain.t.stderr, /ERROR: counting reference for region exceeding the end of the file by one cluster or more/);
    const fixed = await compareCheck(img, ['-r', 'all']);
    assert.match(fixed.t.stderr, /Rebuilding refcount structure\n/);
    // What remains is the reference past the end, which no repair can fix: same verdict from qemu-img.
    const after = await qemuImg(['check', fixed.mine]);
    assert.equal(after.code, 2);
    assert.match(after.stdout, /^\n1 errors were found/);
  } finally {
    await cleanup();
  }
});

test('hostile metadata is reported, never a crash: unaligned and reserved-bit entries, a refcount block outside the image', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const img = await makeImage(dir, 'h.qcow2', 'cluster_size=64k', ['write 0 128k']);
    const l2 = await firstL2(img);
    const e = Buffer.alloc(8);
    e.writeBigUInt64BE((1n << 63n) | 0x50200n); // unaligned data cluster
    await poke(img, l2 + 8, e);
    e.writeBigUInt64BE(0x0100000000070000n); // reserved bit 56
    await poke(img, l2 + 16, e);
    e.writeBigUInt64BE(0x7ff0000n); // refcount block 1 far outside the file
    await poke(img, (await readU64(img, 48)) + 8, e);
    const r = await compareCheck(img, []);
    assert.equal(r.t.code, 2);
    assert.match(r.t.stderr, /Data cluster is not properly aligned/);
    assert.match(r.t.stderr, /refcount block 1 is outside image/);
    await compareCheck(img, ['--output=json']);
  } finally {
    await cleanup();
  }
});

test('raw images have no check: exit 63 like qemu-img', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const img = path.join(dir, 'r.img');
    await mustRun(qemuImg(['create', '-q', '-f', 'raw', img, '1M']), 'create');
    const t = await tsemu(['img', 'check', img]);
    const q = await qemuImg(['check', img]);
    assert.equal(t.code, 63);
    assert.equal(q.code, 63);
    assert.equal(t.stderr, q.stderr.replace('qemu-img:', 'tsemu:'));
  } finally {
    await cleanup();
  }
});

test('a dirty lazy-refcounts image with stale refcounts: reported, then rebuilt by -r all with the dirty bit cleared', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const img = await makeImage(dir, 'd.qcow2', 'lazy_refcounts=on', ['write 0 64k', 'write 1M 64k']);
    await setRefcount16(img, 6, 0); // a data cluster whose refcount update never happened
    const incompat = Buffer.alloc(8);
    incompat.writeBigUInt64BE(1n); // the dirty bit
    await poke(img, 72, incompat);
    // Probed format (no -f): the same findings as qemu-img's.
    const t = await tsemu(['img', 'check', img]);
    const q = await qemuImg(['check', img]);
    sameRun(t, q, 'check of a dirty image');
    assert.equal(t.code, 2);
    const fixed = await compareCheck(img, ['-r', 'all']);
    assert.equal(fixed.t.code, 0);
    assert.match(fixed.t.stderr, /Rebuilding refcount structure/);
    const info = JSON.parse((await mustRun(qemuImg(['info', '--output=json', fixed.mine]), 'info')).stdout);
    assert.equal(info['dirty-flag'], false);
    assert.equal((await qemuImg(['check', fixed.mine])).code, 0);
  } finally {
    await cleanup();
  }
});

test('a version 3 snapshot entry without extra data is reported and completed by -r all, like qemu-img', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const img = await makeImage(dir, 'inc.qcow2', 'cluster_size=64k', ['write 0 64k']);
    await mustRun(qemuImg(['snapshot', '-c', 's1', img]), 'snapshot');
    // Rewrite the only entry without its extra data (ID and name follow the fixed 40 bytes).
    const table = await readU64(img, 64);
    const fh = await open(img, 'r+');
    try {
      const entry = Buffer.alloc(40 + 24 + 64);
      await fh.read(entry, 0, entry.length, table);
      const strings = entry.readUInt16BE(12) + entry.readUInt16BE(14);
      const extra = entry.readUInt32BE(36);
      const shorter = Buffer.concat([entry.subarray(0, 40), entry.subarray(40 + extra, 40 + extra + strings), Buffer.alloc(64)]);
      shorter.writeUInt32BE(0, 36);
      await fh.write(shorter, 0, shorter.length, table);
    } finally {
      await fh.close();
    }
    const plain = await compareCheck(img, []);
    assert.equal(plain.t.code, 2);
    assert.equal(plain.t.stderr, 'ERROR snapshot table entry 0 is incomplete\n');
    const fixed = await compareCheck(img, ['-r', 'all']);
    assert.equal(fixed.t.code, 0);
    assert.equal((await qemuImg(['check', fixed.mine])).code, 0);
  } finally {
    await cleanup();
  }
});

test('tables overlapping the header are corruption to report (exit 2), a bad cluster_bits cannot be checked (exit 1)', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    for (const [field, name] of [[40, 'l1'], [48, 'refcount-table']] as const) {
      const img = await makeImage(dir, `${name}-over-header.qcow2`, 'compat=1.1', ['write -P 1 0 128k']);
      await poke(img, field, Buffer.alloc(8));
      const { t } = await compareCheck(img, []);
      assert.equal(t.code, 2, `${name} at offset 0`);
    }
    const img = await makeImage(dir, 'cluster-bits-8.qcow2', 'compat=1.1', []);
    const bits = Buffer.alloc(4);
    bits.writeUInt32BE(8);
    await poke(img, 20, bits);
    const t = await tsemu(['img', 'check', img]);
    const q = await qemuImg(['check', img]);
    assert.equal(t.code, q.code);
    assert.equal(t.code, 1);
    assert.match(t.stderr, /Could not open '.*': Unsupported cluster size: 2\^8/);
  } finally {
    await cleanup();
  }
});
