import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  INCOMPAT_DIRTY,
  parseQcow2Header,
  serializeQcow2Header,
  newQcow2Header,
  looksLikeQcow2,
} from '../../src/block/formats/qcow2/header.js';
import { mustRun, qemuImg, scratchDir } from '../helpers/peers.js';

async function qemuImage(dir: string, name: string, args: string[]): Promise<Uint8Array> {
  const file = path.join(dir, name);
  await mustRun(qemuImg(['create', '-f', 'qcow2', ...args, file, '1G']), 'qemu-img create');
  return new Uint8Array(await readFile(file));
}

test('headers qemu-img writes parse and serialize back byte for byte', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const cases: Array<[string, string[]]> = [
      ['v3.qcow2', []],
      ['v2.qcow2', ['-o', 'compat=0.10']],
      ['zstd.qcow2', ['-o', 'compression_type=zstd,lazy_refcounts=on,refcount_bits=64']],
      ['ext.qcow2', ['-o', 'extended_l2=on,cluster_size=32k']],
      ['overlay.qcow2', ['-b', 'v3.qcow2', '-F', 'qcow2']],
    ];
    for (const [name, args] of cases) {
      const bytes = await qemuImage(dir, name, args);
      const h = parseQcow2Header(bytes, bytes.length);
      const again = serializeQcow2Header(h);
      assert.deepEqual(again, bytes.subarray(0, again.length), `${name} round trip`);
      assert.ok(looksLikeQcow2(bytes));
    }
    const overlay = parseQcow2Header(await readFile(path.join(dir, 'overlay.qcow2')), 1 << 20);
    assert.equal(overlay.backingFilename, 'v3.qcow2');
    assert.equal(overlay.backingFormat, 'qcow2');
    const zstd = parseQcow2Header(await readFile(path.join(dir, 'zstd.qcow2')), 1 << 20);
    assert.equal(zstd.compressionType, 'zstd');
    assert.equal(zstd.refcountOrder, 6);
  } finally {
    await cleanup();
  }
});

/** A valid 64 KiB-cluster v3 header cluster for a 1 GiB image; `edit` breaks it. */
function hostile(edit: (dv: DataView, bytes: Uint8Array) => void, fileSize = 4 * 65536): [Uint8Array, number] {
  const h = newQcow2Header({
    version: 3, clusterBits: 16, size: 2 ** 30, refcountOrder: 4, l1Size: 2,
    l1TableOffset: 3 * 65536, refcountTableOffset: 65536, refcountTableClusters: 1,
  });
  const bytes = serializeQcow2Header(h);
  edit(new DataView(bytes.buffer), bytes);
  return [bytes, fileSize];
}

test('hostile headers get errors that name the problem', () => {
  const cases: Array<[string, [Uint8Array, number], RegExp]> = [
    ['cluster_bits 8', hostile((dv) => dv.setUint32(20, 8)), /Unsupported cluster size: 2\^8/],
    ['cluster_bits 22', hostile((dv) => dv.setUint32(20, 22)), /Unsupported cluster size: 2\^22/],
    ['refcount_order 7', hostile((dv) => dv.setUint32(96, 7)), /may not exceed 64 bits/],
    ['unaligned L1', hostile((dv) => dv.setBigUint64(40, 3n * 65536n + 8n)), /L1 table offset .* not aligned/],
    ['L1 past EOF', hostile((dv) => dv.setBigUint64(40, 100n * 65536n)), /L1 table offset .* past the end of the file/],
    ['refcount table on header', hostile((dv) => dv.setBigUint64(48, 0n)), /reference count table offset 0: overlaps the qcow2 header/],
    ['no refcount table', hostile((dv) => dv.setUint32(56, 0)), /does not contain a reference count table/],
    ['huge refcount table', hostile((dv) => dv.setUint32(56, 1000)), /Reference count table too large/],
    ['absurd L1', hostile((dv) => dv.setUint32(36, 2 ** 30)), /Active L1 table too large/],
    ['size past L1', hostile((dv) => dv.setBigUint64(24, 2n ** 40n)), /L1 table is too small/],
    ['size past any L1', hostile((dv) => dv.setBigUint64(24, 2n ** 52n)), /too large for the cluster size/],
    ['unknown incompatible bit', hostile((dv) => dv.setBigUint64(72, 1n << 9n)), /Unsupported qcow2 feature\(s\): Unknown incompatible feature bit 9/],
    ['header_length small', hostile((dv) => dv.setUint32(100, 96)), /header_length 96 is too small/],
    ['backing name 1024', hostile((dv) => { dv.setBigUint64(8, 1024n); dv.setUint32(16, 1024); }), /Backing file name too long: 1024/],
    ['version 4', hostile((dv) => dv.setUint32(4, 4)), /Unsupported qcow2 version 4/],
    ['encrypted', hostile((dv) => dv.setUint32(32, 2)), /Encrypted qcow2 images are not supported/],
    ['zstd bit without type', hostile((dv) => dv.setBigUint64(72, 1n << 3n)), /compression_type field is zlib/],
    ['extended L2 on 4k clusters', hostile((dv) => { dv.setUint32(20, 12); dv.setBigUint64(72, 1n << 4n); }, 1 << 20), /extended L2 entries need a cluster size of at least 16k/],
  ];
  for (const [what, [bytes, size], re] of cases) {
    assert.throws(() => parseQcow2Header(bytes, size), re, what);
  }
  const [full] = hostile(() => {});
  assert.throws(() => parseQcow2Header(full.subarray(0, 50), 50), /truncated/);
});

test('unknown incompatible features are named from the feature name table', () => {
  const [bytes, size] = hostile((dv, b) => {
    dv.setBigUint64(72, 1n << 7n);
    // Rename the table's "dirty bit" entry to describe incompatible bit 7.
    const at = Buffer.from(b).indexOf('dirty bit');
    b[at - 1] = 7;
    b.set(Buffer.from('frobnicated clusters\0'), at);
  });
  assert.throws(() => parseQcow2Header(bytes, size), /Unsupported qcow2 feature\(s\): frobnicated clusters/);
});

test('the dirty bit survives a round trip and unknown extensions are kept', () => {
  const h = newQcow2Header({
    version: 3, clusterBits: 16, size: 2 ** 20, refcountOrder: 4, l1Size: 1,
    l1TableOffset: 3 * 65536, refcountTableOffset: 65536, refcountTableClusters: 1,
  });
  h.incompatibleFeatures |= INCOMPAT_DIRTY;
  h.unknownExtensions.push({ type: 0x12345678, data: new Uint8Array([1, 2, 3]) });
  const back = parseQcow2Header(serializeQcow2Header(h), 4 * 65536);
  assert.equal(back.incompatibleFeatures, INCOMPAT_DIRTY);
  assert.deepEqual(back.unknownExtensions, [{ type: 0x12345678, data: new Uint8Array([1, 2, 3]) }]);
});
