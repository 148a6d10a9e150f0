/**
 * qcow2's synchronous cached read (BlockNode.readCachedSync, for virtio-blk):
 * it answers true only with the bytes read() returns (data, zero and
 * unallocated clusters over a qcow2 backing file, on plain and extended-L2
 * images, into parts of any split), and declines (false, never a throw) what
 * it must leave to read(): compressed clusters, ranges over several runs, an
 * uncached L2 table, a write holding the lock or waiting for it, a backing
 * file that ends inside the range, ranges past the virtual disk's end or past
 * the image file's end, a corrupt L2 entry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, stat, truncate } from 'node:fs/promises';
import path from 'node:path';
import { createQcow2 } from '../../src/block/formats/qcow2/create.js';
import type { Qcow2Node } from '../../src/block/formats/qcow2/node.js';
import type { BlockNode } from '../../src/block/node.js';
import { closeImage, openImage } from '../../src/block/open.js';
import { patternBytes } from '../helpers/pattern.js';
import { scratchDir } from '../helpers/peers.js';

const CS = 65536;
const SIZE = 16 * CS;
const BACKING_SIZE = 8 * CS;
const CONFIGS: Array<[string, Record<string, string>]> = [
  ['v3', {}],
  ['v3 extended_l2', { extended_l2: 'on' }],
];

/** readCachedSync into three parts (1000 bytes, the rest of the first 4 KiB, the rest) prefilled with 0xee; null when declined. */
function readNow(node: BlockNode, offset: number, length: number): Uint8Array | null {
  const out = new Uint8Array(length).fill(0xee);
  const cuts = [0, Math.min(1000, length), Math.min(4096, length), length];
  const parts = cuts.slice(1).map((end, i) => out.subarray(cuts[i]!, end));
  return node.readCachedSync!(offset, parts, length) ? out : null;
}

async function readAsync(node: BlockNode, offset: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  await node.read(offset, out);
  return out;
}

/** A top image over a qcow2 backing file (BACKING_SIZE of pattern): clusters 0-1 data, 2 zero, 3 compressed, the rest untouched. */
async function makeChain(dir: string, name: string, opts: Record<string, string>): Promise<string> {
  const base = path.join(dir, `base-${name}.qcow2`);
  const top = path.join(dir, `top-${name}.qcow2`);
  await createQcow2({ filename: base, size: BACKING_SIZE, options: new Map(Object.entries(opts)) });
  const b = await openImage(base);
  await b.write(0, patternBytes(1, 0, BACKING_SIZE));
  await closeImage(b);
  await createQcow2({ filename: top, size: SIZE, options: new Map(Object.entries({ ...opts, backing_file: base, backing_fmt: 'qcow2' })) });
  const t = await openImage(top);
  await t.write(0, patternBytes(2, 0, 2 * CS));
  await t.writeZeroes(2 * CS, CS);
  await t.writeCompressed!(3 * CS, patternBytes(3, 0, CS));
  await closeImage(t);
  return top;
}

test('readCachedSync returns what read() returns for data, zero and unallocated clusters, and declines what it must leave to read()', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    for (const [name, opts] of CONFIGS) {
      const top = await makeChain(dir, name.replace(/ /g, '_'), opts);
      const img = await openImage(top, { inlineCachedReads: 'always' });
      try {
        assert.equal(readNow(img, 0, CS), null, `${name}: the L2 table is not cached yet`);
        await readAsync(img, 0, 512);
        assert.equal(readNow(img, 4 * CS, CS), null, `${name}: the backing file's L2 table is not cached yet`);
        await readAsync(img, 4 * CS, 512);
        const cases: Array<[string, number, number]> = [
          ['a data cluster', 0, CS],
          ['two data clusters one after another', 0, 2 * CS],
          ['a piece inside a data cluster', 5000, 4096],
          ['a zero cluster', 2 * CS, CS],
          ['unallocated clusters over the backing file', 4 * CS, 2 * CS],
          ['unallocated clusters past the backing file', BACKING_SIZE, 2 * CS],
        ];
        for (const [what, offset, length] of cases) {
          const now = readNow(img, offset, length);
          assert.ok(now, `${name}: ${what} is read at once`);
          assert.deepEqual(now, await readAsync(img, offset, length), `${name}: ${what}`);
        }
        const declined: Array<[string, number, number]> = [
          ['a compressed cluster', 3 * CS, CS],
          ['data then zero clusters (two runs)', CS, 2 * CS],
          ['a range the backing file ends inside', BACKING_SIZE - CS / 2, CS],
          ['a range past the end of the disk', SIZE - 4096, 8192],
        ];
        for (const [what, offset, length] of declined) {
          assert.equal(readNow(img, offset, length), null, `${name}: ${what} is left to read()`);
          if (offset + length <= SIZE) await readAsync(img, offset, length);
        }
        assert.deepEqual(
          (await readAsync(img, BACKING_SIZE - CS / 2, CS)).subarray(CS / 2),
          new Uint8Array(CS / 2),
          'read() zero-fills past the backing file',
        );
      } finally {
        await closeImage(img);
      }
    }
  } finally {
    await cleanup();
  }
});

test('readCachedSync declines while a write holds or waits for the lock, and sees the write once it completed', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const top = await makeChain(dir, 'locked', {});
    const img = await openImage(top, { inlineCachedReads: 'always' });
    try {
      await readAsync(img, 4 * CS, 512);
      assert.ok(readNow(img, 4 * CS, CS));
      const fresh = patternBytes(9, 0, CS);
      const writing = img.write(4 * CS, fresh);
      assert.equal(readNow(img, 4 * CS, CS), null, 'a write holds the lock');
      assert.equal(readNow(img, 0, CS), null, 'any range: the metadata may be half changed');
      await writing;
      assert.deepEqual(readNow(img, 4 * CS, CS), fresh, 'the completed write is seen');

      const reading = readAsync(img, 0, CS);
      const waiting = img.write(5 * CS, patternBytes(10, 0, CS));
      assert.equal(readNow(img, 0, CS), null, 'a write waits for the lock');
      await Promise.all([reading, waiting]);
      assert.deepEqual(readNow(img, 5 * CS, CS), patternBytes(10, 0, CS));
    } finally {
      await closeImage(img);
    }
  } finally {
    await cleanup();
  }
});

test('a data cluster past the end of the image file, and a corrupt L2 entry, are left to read()', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'short.qcow2');
    await createQcow2({ filename: file, size: SIZE, options: new Map() });
    const w = (await openImage(file)) as Qcow2Node;
    const data = patternBytes(4, 0, CS);
    await w.write(0, data);
    const host = (await w.blockStatus(0, CS)).hostOffset!;
    const l2 = w.l1Entry(0).offset;
    await closeImage(w);
    assert.equal(host + CS, (await stat(file)).size, 'the data cluster is the last one in the file');
    await truncate(file, host + CS / 2);

    const img = await openImage(file, { readOnly: true, inlineCachedReads: 'always' });
    try {
      await readAsync(img, 0, 512);
      assert.deepEqual(readNow(img, 0, CS / 2), data.subarray(0, CS / 2), 'the part inside the file');
      assert.equal(readNow(img, 0, CS), null, 'the cluster runs past the end of the file');
      const whole = await readAsync(img, 0, CS);
      assert.deepEqual(whole.subarray(0, CS / 2), data.subarray(0, CS / 2));
      assert.deepEqual(whole.subarray(CS / 2), new Uint8Array(CS / 2), 'read() zero-fills past the end of the file');
    } finally {
      await closeImage(img);
    }

    // L2 entry 0 pointing at an unaligned host offset.
    const fh = await open(file, 'r+');
    const entry = new Uint8Array(8);
    await fh.read(entry, 0, 8, l2);
    entry[6]! |= 0x02;
    await fh.write(entry, 0, 8, l2);
    await fh.close();
    const bad = await openImage(file, { readOnly: true, inlineCachedReads: 'always' });
    try {
      await readAsync(bad, CS, 512);
      assert.equal(readNow(bad, 0, 4096), null);
      await assert.rejects(readAsync(bad, 0, 4096), /corrupt.*L2 entry 0.*unaligned/);
    } finally {
      await closeImage(bad);
    }
  } finally {
    await cleanup();
  }
});
