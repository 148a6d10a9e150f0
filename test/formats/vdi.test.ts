/**
 * VDI interop with the real qemu-img, both ways: images tsemu creates and writes
 * pass qemu-img check and compare equal; images qemu-img/qemu-io write read the
 * same through tsemu; info JSON is qemu-img's; -o help lists qemu-img's options;
 * every new image has its own UUID; hostile headers and block maps are clear
 * errors that leave the file unchanged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createImage, createOptionsHelp } from '../../src/block/ops/create.js';
import { convertImage } from '../../src/block/ops/convert.js';
import { closeImage, openImage } from '../../src/block/open.js';
import { checkVdi } from '../../src/block/formats/vdi/check.js';
import type { VdiNode } from '../../src/block/formats/vdi/node.js';
import { mustRun, qemuImg, qemuIo, scratchDir } from '../helpers/peers.js';
import { describeMismatch, readImageWithQemu, readImageWithTsemu } from '../helpers/images.js';
import { assertInfoMatches, qemuAgrees, writeScript, qemuHelpWithUuid } from './support.js';
import { assertHostileOpenFails, assertReportsMatchAndClean, withReadOnlyFile } from './image-checks.js';

const MiB = 1 << 20;
const WRITES = [
  { offset: 0, length: 4096 },
  { offset: MiB - 512, length: 1024 }, // across a block boundary
  { offset: 3 * MiB + 12345, length: 70000 },
  { offset: 2 * MiB, length: 2 * MiB }, // whole blocks, one already partly written
  { offset: 100, length: 10 }, // rewrite inside an allocated block
];

for (const opts of ['static=off', 'static=on']) {
  for (const size of [5 * MiB, 5 * MiB + 512]) {
    test(`vdi ${opts} ${size}: tsemu creates and writes, qemu-img checks and compares`, async () => {
      const { dir, cleanup } = await scratchDir();
      try {
        const file = path.join(dir, 'a.vdi');
        const line = await createImage({ filename: file, format: 'vdi', size: String(size), options: [opts] });
        assert.equal(line, `Formatting '${file}', fmt=vdi size=${size} ${opts}`);
        await assertInfoMatches(file);
        const expected = await writeScript(file, size, WRITES);
        await qemuAgrees(file, 'vdi', expected, dir);
        await assertReportsMatchAndClean(file, checkVdi);
      } finally {
        await cleanup();
      }
    });
  }
}

test('vdi: qemu-img creates, qemu-io writes, tsemu reads the same bytes and info', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    for (const opts of ['static=off', 'static=on']) {
      const file = path.join(dir, `q-${opts}.vdi`);
      await mustRun(qemuImg(['create', '-q', '-f', 'vdi', '-o', opts, file, '7M']), 'qemu-img create');
      await mustRun(qemuIo(['-f', 'vdi', '-c', 'write -P 0x5a 1000 300k', '-c', 'write -P 0xa5 5M 1M', '-c', 'write -z 5M 4k', file]), 'qemu-io');
      const mine = await readImageWithTsemu(file);
      const theirs = await readImageWithQemu(file, dir, 'vdi');
      assert.equal(describeMismatch(file, mine, theirs), null);
      await assertReportsMatchAndClean(file, checkVdi);
    }
  } finally {
    await cleanup();
  }
});

test('vdi: convert both ways through tsemu matches qemu-img compare', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const src = path.join(dir, 'src.qcow2');
    await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', src, '9M']), 'qemu-img create');
    await mustRun(qemuIo(['-c', 'write -P 0x33 0 1500k', '-c', 'write -P 0x44 7M 100k', src]), 'qemu-io');
    const vdi = path.join(dir, 'out.vdi');
    await convertImage({ sources: [src], target: vdi, outputFormat: 'vdi' });
    await mustRun(qemuImg(['check', vdi]), 'qemu-img check');
    await mustRun(qemuImg(['compare', vdi, src]), 'qemu-img compare');
    const back = path.join(dir, 'back.raw');
    await convertImage({ sources: [vdi], target: back, outputFormat: 'raw' });
    await mustRun(qemuImg(['compare', '-F', 'raw', src, back]), 'qemu-img compare back');
  } finally {
    await cleanup();
  }
});

test('vdi: -o help lists the options qemu-img lists', async () => {
  const q = await mustRun(qemuImg(['create', '-f', 'vdi', '-o', 'help']), 'qemu-img -o help');
  assert.equal(createOptionsHelp('vdi'), qemuHelpWithUuid(q.stdout));
});

test('vdi: every created image has a new image UUID', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const uuids = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const file = path.join(dir, `u${i}.vdi`);
      await createImage({ filename: file, format: 'vdi', size: '1M', options: [] });
      const img = (await openImage(file, { readOnly: true })) as VdiNode;
      uuids.add(Buffer.from(img.vdiHeader.uuidImage).toString('hex'));
      assert.notEqual(Buffer.from(img.vdiHeader.uuidImage).toString('hex'), '0'.repeat(32));
      await closeImage(img);
    }
    assert.equal(uuids.size, 3);
  } finally {
    await cleanup();
  }
});

/** Patches little-endian u32 fields of a fresh qemu-made image; the open must fail naming `pattern`. */
const HOSTILE: { name: string; patch: [number, number][]; truncate?: number; grow?: number; readLength?: number; pattern: RegExp; onRead?: boolean }[] = [
  { name: 'bad version', patch: [[0x44, 0x00020000]], pattern: /unsupported VDI image \(version 2\.0\)/ },
  { name: 'bad image type', patch: [[0x4c, 7]], pattern: /image type 7/ },
  { name: 'odd block size', patch: [[0x178, 12345]], pattern: /block size 12345/ },
  { name: 'absurd block count', patch: [[0x180, 0x7fffffff]], pattern: /blocks in image/ },
  { name: 'disk larger than its map', patch: [[0x174, 1]], pattern: /image bitmap has room/ },
  { name: 'allocated count above the block count', patch: [[0x184, 99]], pattern: /99 blocks allocated/ },
  { name: 'block map past the end', patch: [[0x154, 0x10000], [0x158, 0x20000]], pattern: /truncated/ },
  { name: 'truncated header', patch: [], truncate: 300, pattern: /truncated/ },
  { name: 'block entry past the data area', patch: [[0x200, 1000]], pattern: /points to data block 1000/, onRead: true },
  // Blocks 0 and 1 stored one after another (data blocks 3 and 4 of 4), in a file long enough to read both at once.
  {
    name: 'a run of stored blocks reaching past the data area',
    patch: [[0x200, 3], [0x204, 4]],
    grow: 8 << 20,
    readLength: 2 << 20,
    pattern: /VDI block 1 points to data block 4/,
    onRead: true,
  },
];

for (const h of HOSTILE) {
  test(`vdi hostile: ${h.name} is a clear error and the file is unchanged`, async () => {
    const { dir, cleanup } = await scratchDir();
    try {
      const file = path.join(dir, 'h.vdi');
      await mustRun(qemuImg(['create', '-q', '-f', 'vdi', file, '4M']), 'qemu-img create');
      const bytes = new Uint8Array(await readFile(file));
      const view = new DataView(bytes.buffer);
      for (const [at, value] of h.patch) view.setUint32(at, value, true);
      const grown = new Uint8Array(Math.max(bytes.length, h.grow ?? 0));
      grown.set(bytes);
      await writeFile(file, h.truncate ? bytes.subarray(0, h.truncate) : grown);
      await assertHostileOpenFails(file, 'vdi', h.pattern, h.readLength ?? 4096);
    } finally {
      await cleanup();
    }
  });
}

test('vdi check: duplicate data blocks and a wrong allocated count are corruptions', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'c.vdi');
    await mustRun(qemuImg(['create', '-q', '-f', 'vdi', file, '4M']), 'qemu-img create');
    await mustRun(qemuIo(['-c', 'write 0 1M', file]), 'qemu-io');
    const bytes = new Uint8Array(await readFile(file));
    new DataView(bytes.buffer).setUint32(0x204, 0, true); // block 1 shares block 0's data
    await writeFile(file, bytes);
    const q = await qemuImg(['check', '--output=json', file]);
    const counts = await withReadOnlyFile(file, (f) => checkVdi(f, { log: () => {} }));
    assert.equal(counts.corruptions, JSON.parse(q.stdout).corruptions);
    assert.equal(counts.corruptions, 2);
  } finally {
    await cleanup();
  }
});
