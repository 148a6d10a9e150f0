import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { mustRun, qemuImg, qemuIo, scratchDir, tsemu } from '../helpers/peers.js';

/**
 * A qcow2 image on a backing file whose snapshot "before" holds data, zero,
 * compressed and unallocated clusters (subclusters with extended L2), changed
 * after the snapshot was taken.
 */
async function imageWithSnapshot(dir: string, createOptions: string): Promise<string> {
  const base = path.join(dir, 'base.qcow2');
  const img = path.join(dir, `img-${createOptions.replace(/\W/g, '_')}.qcow2`);
  await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', base, '4M']), 'create base');
  await mustRun(qemuIo(['-c', 'write -P 9 0 4M', base]), 'write base');
  await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', '-o', createOptions, '-b', 'base.qcow2', '-F', 'qcow2', img, '4M']), 'create');
  await mustRun(
    qemuIo(['-c', 'write -P 1 0 100k', '-c', 'write -z 1M 64k', '-c', 'write -c -P 2 2M 64k', '-c', 'write -P 3 3M 4k', img]),
    'write before',
  );
  await mustRun(qemuImg(['snapshot', '-c', 'before', img]), 'snapshot');
  await mustRun(qemuIo(['-c', 'write -P 7 0 4M', img]), 'write after');
  return img;
}

test('convert -l and measure -l read an internal snapshot as qemu-img does', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    for (const opts of ['compat=1.1', 'compat=0.10', 'extended_l2=on,cluster_size=64k']) {
      const img = await imageWithSnapshot(dir, opts);
      for (const param of ['before', '1', 'snapshot.name=before', 'snapshot.id=1,snapshot.name=before']) {
        const q = path.join(dir, 'q.raw');
        const t = path.join(dir, 't.raw');
        await mustRun(qemuImg(['convert', '-l', param, '-O', 'raw', img, q]), 'qemu-img convert -l');
        const r = await tsemu(['img', 'convert', '-l', param, '-O', 'raw', img, t]);
        assert.equal(r.code, 0, r.stderr);
        await mustRun(qemuImg(['compare', '-f', 'raw', '-F', 'raw', q, t]), `${opts} ${param}: same content`);
        const qm = await mustRun(qemuImg(['measure', '-l', param, '-O', 'qcow2', '--output=json', img]), 'qemu-img measure');
        const tm = await tsemu(['img', 'measure', '-l', param, '-O', 'qcow2', '--output=json', img]);
        assert.equal(tm.code, 0, tm.stderr);
        assert.deepEqual(JSON.parse(tm.stdout), JSON.parse(qm.stdout), `${opts} ${param}: measure`);
      }
      for (const param of ['nope', 'snapshot.id=1,snapshot.name=other']) {
        const r = await tsemu(['img', 'convert', '-l', param, '-O', 'raw', img, path.join(dir, 'x.raw')]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /Failed to load snapshot: Can't find snapshot/);
      }
    }
  } finally {
    await cleanup();
  }
});
