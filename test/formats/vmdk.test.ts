/**
 * VMDK interop with the real qemu-img, both ways, for every subformat and create
 * option: images tsemu creates and writes pass qemu-img check and compare equal;
 * their descriptors say what qemu-img's say (CIDs and the added UUID aside);
 * images qemu-img/qemu-io write read the same through tsemu; info JSON is
 * qemu-img's; streamOptimized output has the footer layout and the descriptor
 * fields importers need; backing through parentFileNameHint follows the CID rule.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createImage, createOptionsHelp } from '../../src/block/ops/create.js';
import { convertImage } from '../../src/block/ops/convert.js';
import { closeImage, openImage } from '../../src/block/open.js';
import { checkVmdk } from '../../src/block/formats/vmdk/check.js';
import type { VmdkNode } from '../../src/block/formats/vmdk/node.js';
import { mustRun, qemuImg, qemuIo, scratchDir } from '../helpers/peers.js';
import { describeMismatch, readImageWithQemu, readImageWithTsemu } from '../helpers/images.js';
import { assertInfoMatches, assertMapMatches, qemuAgrees, tsemuReadsAsQemu, writeScript, qemuHelpWithUuid } from './support.js';
import { assertReportsMatchAndClean } from './image-checks.js';

const MiB = 1 << 20;
const GiB = 2 ** 30;

interface Case {
  options: string;
  size: number;
  writes: { offset: number; length: number }[];
}

const SMALL_WRITES = [
  { offset: 0, length: 4096 },
  { offset: 65536 - 512, length: 1024 }, // across a grain boundary
  { offset: 3 * MiB + 12345, length: 70000 },
  { offset: MiB, length: 2 * MiB }, // whole grains
  { offset: 100, length: 10 }, // inside a stored grain
];
const SPLIT_WRITES = [
  { offset: 2 * GiB - 4096, length: 8192 }, // across the extent boundary
  { offset: 4 * GiB + 512, length: 65536 },
  { offset: 7, length: 3 },
];

const CASES: Case[] = [
  { options: 'subformat=monolithicSparse', size: 5 * MiB, writes: SMALL_WRITES },
  { options: 'subformat=monolithicSparse,zeroed_grain=on,adapter_type=lsilogic', size: 5 * MiB + 512, writes: SMALL_WRITES },
  { options: 'subformat=monolithicFlat,adapter_type=buslogic,hwversion=7', size: 5 * MiB, writes: SMALL_WRITES },
  { options: 'subformat=twoGbMaxExtentSparse,compat6=on', size: 4100 * MiB, writes: SPLIT_WRITES },
  { options: 'subformat=twoGbMaxExtentFlat,toolsversion=1234,adapter_type=legacyESX', size: 4100 * MiB, writes: SPLIT_WRITES },
  { options: 'subformat=streamOptimized', size: 5 * MiB, writes: SMALL_WRITES },
  { options: 'subformat=streamOptimized,adapter_type=lsilogic,hwversion=14,toolsversion=10304', size: 3 * MiB + 512, writes: [...SMALL_WRITES.slice(0, 2), { offset: 3 * MiB - 1000, length: 1512 }] },
];

/** Descriptor lines that differ by design: random CIDs, and tsemu's added keys. */
function comparableDescriptor(text: string): string[] {
  return text
    .replace(/\0+$/, '')
    .split('\n')
    .filter((l) => !/^(CID|parentCID)=|^ddb\.uuid\.image|^ddb\.toolsInstallType/.test(l))
    .map((l) => l.replace(/"[^"]*\/([^"/]+)"/, '"$1"'));
}

async function descriptorText(file: string): Promise<string> {
  const bytes = await readFile(file);
  if (bytes.readUInt32LE(0) === 0x564d444b) {
    const offset = Number(bytes.readBigUInt64LE(28)) * 512;
    const size = Number(bytes.readBigUInt64LE(36)) * 512;
    return bytes.subarray(offset, offset + size).toString('latin1');
  }
  return bytes.toString('latin1');
}

/** The LBAs of a stream's grain markers, front to back (walking markers from the first grain). */
function streamGrainLbas(bytes: Buffer): number[] {
  const lbas: number[] = [];
  for (let pos = Number(bytes.readBigUInt64LE(64)) * 512; pos + 16 <= bytes.length;) {
    const value = Number(bytes.readBigUInt64LE(pos));
    const size = bytes.readUInt32LE(pos + 8);
    if (size === 0) {
      if (bytes.readUInt32LE(pos + 12) === 0) break;
      pos += 512 + value * 512;
    } else {
      lbas.push(value);
      pos += Math.ceil((12 + size) / 512) * 512;
    }
  }
  return lbas;
}

for (const c of CASES) {
  test(`vmdk ${c.options} ${c.size}: tsemu creates and writes, qemu-img checks and compares`, async () => {
    const { dir, cleanup } = await scratchDir();
    try {
      const mine = path.join(dir, 'mine.vmdk');
      const theirs = path.join(dir, 'theirs.vmdk');
      await createImage({ filename: mine, format: 'vmdk', size: String(c.size), options: [c.options] });
      await mustRun(qemuImg(['create', '-q', '-f', 'vmdk', '-o', c.options, theirs, String(c.size)]), 'qemu-img create');
      assert.deepEqual(
        comparableDescriptor(await descriptorText(mine)).map((l) => l.replace(/mine/g, 'X')),
        comparableDescriptor(await descriptorText(theirs)).map((l) => l.replace(/theirs/g, 'X')),
      );
      await assertInfoMatches(mine);
      const expected = await writeScript(mine, c.size, c.writes);
      await qemuAgrees(mine, 'vmdk', expected, dir);
      await assertReportsMatchAndClean(mine, checkVmdk);
    } finally {
      await cleanup();
    }
  });
}

for (const c of CASES) {
  test(`vmdk ${c.options}: qemu-img creates, qemu-io writes, tsemu reads the same bytes and info`, async () => {
    const { dir, cleanup } = await scratchDir();
    try {
      const file = path.join(dir, 'q.vmdk');
      if (c.options.includes('streamOptimized')) {
        const raw = path.join(dir, 'src.raw');
        await mustRun(qemuImg(['create', '-q', '-f', 'raw', raw, String(c.size)]), 'qemu-img create raw');
        await mustRun(qemuIo(['-f', 'raw', '-c', 'write -P 0x5a 1000 300k', '-c', 'write -P 0xa5 2M 1M', raw]), 'qemu-io');
        await mustRun(qemuImg(['convert', '-O', 'vmdk', '-o', c.options, raw, file]), 'qemu-img convert');
      } else {
        await mustRun(qemuImg(['create', '-q', '-f', 'vmdk', '-o', c.options, file, String(c.size)]), 'qemu-img create');
        const last = c.size - 70000;
        await mustRun(qemuIo(['-c', 'write -P 0x5a 1000 300k', '-c', `write -P 0xa5 ${last} 65536`, '-c', 'write -z 2M 64k', file]), 'qemu-io');
      }
      await tsemuReadsAsQemu(file, 'vmdk', dir);
      await assertInfoMatches(file);
      await assertMapMatches(file);
    } finally {
      await cleanup();
    }
  });
}

test('vmdk streamOptimized: tsemu convert writes the footer layout and importer fields; qemu-img agrees', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const src = path.join(dir, 'src.qcow2');
    await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', src, '9M']), 'qemu-img create');
    await mustRun(qemuIo(['-c', 'write -P 0x33 0 1500k', '-c', 'write -P 0x44 7M 100k', src]), 'qemu-io');
    const out = path.join(dir, 'out.vmdk');
    await convertImage({ sources: [src], target: out, outputFormat: 'vmdk', options: ['subformat=streamOptimized,adapter_type=lsilogic'] });
    await mustRun(qemuImg(['check', out]), 'qemu-img check');
    await mustRun(qemuImg(['compare', out, src]), 'qemu-img compare');
    const bytes = await readFile(out);
    assert.equal(bytes.readUInt32LE(4), 3, 'version 3');
    assert.equal(bytes.readUInt32LE(8), 0x30001, 'newline test, compressed grains, markers');
    assert.equal(bytes.readBigUInt64LE(56), 0xffffffffffffffffn, 'directory at the end');
    const n = bytes.length;
    assert.deepEqual([bytes.readUInt32LE(n - 1536 + 8), bytes.readUInt32LE(n - 1536 + 12)], [0, 3], 'footer marker');
    assert.equal(bytes.readUInt32LE(n - 1024), 0x564d444b, 'footer header');
    assert.ok(bytes.subarray(n - 512).every((b) => b === 0), 'end-of-stream marker');
    const lbas = streamGrainLbas(bytes);
    assert.ok(lbas.length > 20, 'grains in the stream');
    assert.deepEqual(lbas, [...lbas].sort((a, b) => a - b), 'grains in increasing LBA order');
    const text = await descriptorText(out);
    for (const line of ['createType="streamOptimized"', 'ddb.adapterType = "lsilogic"', 'ddb.virtualHWVersion = "4"',
      'ddb.geometry.heads = "255"', 'ddb.geometry.sectors = "63"', 'ddb.toolsVersion = "2147483647"', 'ddb.toolsInstallType = "4"']) {
      assert.ok(text.includes(line), `descriptor has ${line}`);
    }
    assert.match(text, /ddb\.geometry\.cylinders = "\d+"/);
    // Appending to a finished stream rewrites its tail; a qemu-made stream gets the tail layout.
    const img = await openImage(out);
    await img.write(8 * MiB, new Uint8Array(65536).fill(9));
    await closeImage(img);
    await mustRun(qemuIo(['-c', 'write -P 9 8M 64k', src]), 'qemu-io');
    await mustRun(qemuImg(['compare', out, src]), 'qemu-img compare after append');
    const qemuStream = path.join(dir, 'q.vmdk');
    await mustRun(qemuImg(['convert', '-O', 'vmdk', '-o', 'subformat=streamOptimized', src, qemuStream]), 'qemu-img convert');
    const img2 = await openImage(qemuStream);
    await img2.write(0, new Uint8Array(4096).fill(1));
    await closeImage(img2);
    await mustRun(qemuIo(['-c', 'write -P 1 0 4k', src]), 'qemu-io');
    await mustRun(qemuImg(['compare', qemuStream, src]), 'qemu-img compare qemu-made stream');
  } finally {
    await cleanup();
  }
});

test('vmdk backing: parentFileNameHint and parentCID; partial grains take the backing bytes; a changed parent is an error', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const base = path.join(dir, 'base.vmdk');
    const top = path.join(dir, 'top.vmdk');
    await mustRun(qemuImg(['create', '-q', '-f', 'vmdk', base, '4M']), 'qemu-img create');
    await mustRun(qemuIo(['-c', 'write -P 0x11 0 4M', base]), 'qemu-io');
    await createImage({ filename: top, format: 'vmdk', options: [], backingFile: 'base.vmdk', backingFormat: 'vmdk' });
    await assertInfoMatches(top);
    const baseImg = (await openImage(base, { readOnly: true })) as VmdkNode;
    const topImg = (await openImage(top, { readOnly: true, backing: false })) as VmdkNode;
    assert.equal(topImg.parentCid, baseImg.cid);
    assert.equal(topImg.backingFilename, 'base.vmdk');
    await closeImage(baseImg);
    await closeImage(topImg);
    const written = await writeScript(top, 4 * MiB, [{ offset: 1000, length: 3000 }, { offset: 2 * MiB + 7, length: 100 }]);
    written.pieces.unshift({ offset: 0, data: new Uint8Array(4 * MiB).fill(0x11) });
    await qemuAgrees(top, 'vmdk', written, dir);
    // A write to the base gives it a new CID: the child no longer matches, in tsemu as in qemu-img.
    await writeScript(base, 4 * MiB, [{ offset: 0, length: 512 }]);
    await assert.rejects(openImage(top, { readOnly: true }), /parent CID .* does not match/);
    const q = await qemuImg(['convert', '-O', 'raw', top, path.join(dir, 'x.raw')]);
    assert.notEqual(q.code, 0);
  } finally {
    await cleanup();
  }
});

test('vmdk: -o help and option errors are qemu-img\'s', async () => {
  const q = await mustRun(qemuImg(['create', '-f', 'vmdk', '-o', 'help']), 'qemu-img -o help');
  assert.equal(createOptionsHelp('vmdk'), qemuHelpWithUuid(q.stdout));
  const { dir, cleanup } = await scratchDir();
  try {
    const raw = path.join(dir, 'r.raw');
    await mustRun(qemuImg(['create', '-q', '-f', 'raw', raw, '1M']), 'qemu-img create');
    const bad: [string[], string | undefined, string | undefined][] = [
      [['subformat=foo'], undefined, undefined],
      [['adapter_type=scsi'], undefined, undefined],
      [['compat6=on,hwversion=7'], undefined, undefined],
      [['subformat=monolithicFlat'], 'r.raw', 'raw'],
      [[], 'r.raw', 'raw'],
    ];
    for (const [options, backing, fmt] of bad) {
      const name = path.join(dir, 'x.vmdk');
      const args = ['create', '-q', '-f', 'vmdk', ...options.flatMap((o) => ['-o', o])];
      if (backing) args.push('-b', backing, '-F', fmt!);
      const qr = await qemuImg([...args, name, '1M']);
      const err = await createImage({ filename: name, format: 'vmdk', size: '1M', options, backingFile: backing, backingFormat: fmt })
        .then(() => null, (e: Error) => e.message);
      assert.equal(`qemu-img: ${err}\n`, qr.stderr, `options ${options.join(',')} backing ${backing}`);
    }
    await assert.rejects(
      createImage({ filename: path.join(dir, 'y.vmdk'), format: 'vmdk', options: ['subformat=streamOptimized'], size: '1M', backingFile: 'a"\nRW 1 FLAT "/etc/passwd', backingFormat: 'vmdk' }),
    );
  } finally {
    await cleanup();
  }
});

test('vmdk: vmfs and vmfsSparse descriptors read as qemu-img reads them', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const flat = path.join(dir, 'disk-flat.bin');
    const data = Buffer.alloc(3 * MiB);
    for (let i = 0; i < data.length; i += 4096) data.fill((i >> 12) & 0xff, i, i + 4096);
    await writeFile(flat, data);
    const vmfs = path.join(dir, 'vmfs.vmdk');
    await writeFile(vmfs,
      '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="vmfs"\n\n' +
      '# Extent description\nRW 2048 FLAT "disk-flat.bin" 1024\nRW 2048 VMFS "disk-flat.bin"\n\nddb.adapterType = "lsilogic"\n');
    assert.equal(describeMismatch('vmfs', await readImageWithTsemu(vmfs), await readImageWithQemu(vmfs, dir, 'vmdk')), null);
    await assertInfoMatches(vmfs);
    // ZERO extents read as zeroes (qemu-img 7.2 mishandles them, so this is tsemu's alone).
    const zero = path.join(dir, 'zero.vmdk');
    await writeFile(zero, '# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType="vmfs"\n\n# Extent description\nRW 8 FLAT "disk-flat.bin" 8\nRW 1024 ZERO\n');
    const z = await readImageWithTsemu(zero);
    assert.equal(z.length, 8 * 512 + 1024 * 512);
    assert.ok(z.subarray(0, 4096).every((b) => b === 1) && z.subarray(4096).every((b) => b === 0));

    // A COWD (ESX sparse) extent: 2 MiB, 4 KiB grains, directory at sector 1, one table at sector 2.
    const sparse = Buffer.alloc((2 + 32 + 16) * 512);
    sparse.write('COWD', 0, 'latin1');
    sparse.writeUInt32LE(1, 4);
    sparse.writeUInt32LE(3, 8);
    sparse.writeUInt32LE(4096, 12); // sectors
    sparse.writeUInt32LE(8, 16); // grain sectors
    sparse.writeUInt32LE(1, 20); // directory sector
    sparse.writeUInt32LE(1, 24); // directory entries
    sparse.writeUInt32LE(2, 512); // directory → table at sector 2
    sparse.writeUInt32LE(34, 2 * 512 + 3 * 4); // grain 3 at sector 34
    sparse.writeUInt32LE(42, 2 * 512 + 200 * 4); // grain 200 at sector 42
    sparse.fill(0xab, 34 * 512, 42 * 512);
    sparse.fill(0xcd, 42 * 512, 50 * 512);
    const delta = path.join(dir, 'disk-delta.bin');
    await writeFile(delta, sparse);
    const vmfsSparse = path.join(dir, 'vmfssparse.vmdk');
    await writeFile(vmfsSparse,
      '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="vmfsSparse"\n\n# Extent description\nRW 4096 VMFSSPARSE "disk-delta.bin"\n');
    const mine = await readImageWithTsemu(vmfsSparse);
    assert.equal(describeMismatch('vmfsSparse', mine, await readImageWithQemu(vmfsSparse, dir, 'vmdk')), null);
    assert.equal(mine[3 * 4096], 0xab);
    assert.equal(mine[200 * 4096 + 5], 0xcd);
  } finally {
    await cleanup();
  }
});
