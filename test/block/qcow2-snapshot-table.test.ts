import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { mustRun, qemuImg, scratchDir } from '../helpers/peers.js';
import {
  ICOUNT_NONE,
  findSnapshot,
  nextSnapshotId,
  readSnapshotTable,
  serializeSnapshotTable,
  snapshotInfo,
  type SnapshotEntry,
} from '../../src/block/formats/qcow2/snapshot-table.js';

function sourceOf(bytes: Uint8Array) {
  return async (offset: number, length: number) => {
    const out = new Uint8Array(length);
    out.set(bytes.subarray(offset, offset + length));
    return out;
  };
}

test('reads the snapshot table qemu-img writes, matches its JSON, and re-encodes it byte for byte', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const img = path.join(dir, 'a.qcow2');
    await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', img, '4M']), 'create');
    await mustRun(qemuImg(['snapshot', '-c', 'first', img]), 'snap 1');
    await mustRun(qemuImg(['snapshot', '-c', 'a longer snapshot name', img]), 'snap 2');
    const info = JSON.parse((await mustRun(qemuImg(['info', '--output=json', img]), 'info')).stdout);
    const bytes = new Uint8Array(await readFile(img));
    const hv = new DataView(bytes.buffer);
    const count = hv.getUint32(60);
    const offset = Number(hv.getBigUint64(64));
    const table = await readSnapshotTable(sourceOf(bytes), offset, count, { version: 3, virtualSize: 4 << 20 });
    assert.equal(table.entries.length, 2);
    assert.deepEqual(table.warnings, []);
    assert.deepEqual(table.entries.map(snapshotInfo), info.snapshots);
    assert.equal(table.entries[0]!.diskSize, 4 << 20);
    const encoded = serializeSnapshotTable(table.entries);
    assert.equal(encoded.length, table.byteLength);
    // qemu-img does not write the last entry's padding: the file may end before it.
    const onDisk = new Uint8Array(table.byteLength);
    onDisk.set(bytes.subarray(offset, offset + table.byteLength));
    assert.deepEqual(encoded, onDisk);
  } finally {
    await cleanup();
  }
});

function entry(over: Partial<SnapshotEntry>): SnapshotEntry {
  return {
    l1Offset: 0x30000, l1Size: 1, id: '1', name: 'x', dateSec: 1, dateNsec: 2, vmClockNsec: 3_500_000_000n,
    vmStateSize: 0, diskSize: 1 << 20, icount: ICOUNT_NONE, unknownExtra: new Uint8Array(0), ...over,
  };
}

test('round-trips unknown extra data, 64-bit VM state sizes and a missing icount', async () => {
  const entries = [
    entry({ unknownExtra: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), vmStateSize: 2 ** 33 }),
    entry({ id: '7', name: 'ünïcode', icount: 12345n }),
  ];
  const bytes = serializeSnapshotTable(entries);
  const back = await readSnapshotTable(sourceOf(bytes), 0, 2, { version: 3, virtualSize: 0 });
  assert.deepEqual(back.entries, entries);
  assert.equal(snapshotInfo(back.entries[0]!)['vm-clock-sec'], 3);
  assert.equal(snapshotInfo(back.entries[0]!)['vm-clock-nsec'], 500_000_000);
  assert.equal('icount' in snapshotInfo(back.entries[0]!), false);
  assert.equal(snapshotInfo(back.entries[1]!).icount, 12345);
});

test('old entries without extra data take the image size and warn on version 3', async () => {
  const bytes = new Uint8Array(48);
  const v = new DataView(bytes.buffer);
  v.setBigUint64(0, 0x50000n);
  v.setUint32(8, 2);
  v.setUint16(12, 1);
  v.setUint16(14, 1);
  v.setUint32(32, 4096);
  bytes[40] = 0x31;
  bytes[41] = 0x61;
  const t = await readSnapshotTable(sourceOf(bytes), 0, 1, { version: 3, virtualSize: 999 });
  assert.equal(t.entries[0]!.diskSize, 999);
  assert.equal(t.entries[0]!.vmStateSize, 4096);
  assert.equal(t.entries[0]!.icount, ICOUNT_NONE);
  assert.equal(t.entries[0]!.name, 'a');
  assert.equal(t.byteLength, 48);
  assert.match(t.warnings[0]!.message, /^snapshot table entry 0 is incomplete$/);
  const v2 = await readSnapshotTable(sourceOf(bytes), 0, 1, { version: 2, virtualSize: 999 });
  assert.deepEqual(v2.warnings, []);
});

test('hostile tables are refused with a message naming the problem', async () => {
  const bytes = new Uint8Array(48);
  new DataView(bytes.buffer).setUint32(36, 5000);
  await assert.rejects(readSnapshotTable(sourceOf(bytes), 0, 1, { version: 3, virtualSize: 0 }), /Too much extra metadata/);
  await assert.rejects(readSnapshotTable(sourceOf(bytes), 0, 70000, { version: 3, virtualSize: 0 }), /Snapshot table too large/);
});

test('finds by ID before name and numbers new snapshots after the largest ID', () => {
  const entries = [entry({ id: '1', name: '2' }), entry({ id: '2', name: 'b' }), entry({ id: '9', name: 'b' })];
  assert.equal(findSnapshot(entries, '2'), 1);
  assert.equal(findSnapshot(entries, 'b'), 1);
  assert.equal(findSnapshot(entries, 'zz'), -1);
  assert.equal(nextSnapshotId(entries), '10');
  assert.equal(nextSnapshotId([]), '1');
});
