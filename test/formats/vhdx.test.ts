/**
 * VHDX interop with the real qemu-img 7.2, both ways: dynamic and fixed images,
 * block states and block sizes that tsemu creates and writes pass qemu-img check
 * and compare equal, with qemu-img's info and map JSON; images qemu-img/qemu-io
 * write read the same in tsemu (and take more writes from tsemu); -o help and
 * option errors are qemu-img's; the uuid option sets the page 83 disk id.
 *
 * Blocks in the UNDEFINED and UNMAPPED states read as zeroes.
 *
 * The log: an image with a log to replay (made by tsemu's own log writer, or by
 * a tsemu process that flushed and then stopped without closing) is refused
 * read-only by both programs, replayed by a writable open in tsemu and by
 * qemu-img check -r all, and passes qemu-img check afterwards; zero descriptors
 * zero their range in both replays.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, open, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createImage, createOptionsHelp } from '../../src/block/ops/create.js';
import { checkImage } from '../../src/block/ops/check.js';
import { measureImage } from '../../src/block/ops/measure.js';
import { closeImage, openImage } from '../../src/block/open.js';
import { FileNode } from '../../src/block/protocols/file.js';
import { checkVhdx } from '../../src/block/formats/vhdx/check.js';
import { buildLogEntry } from '../../src/block/formats/vhdx/log.js';
import { crc32c } from '../../src/block/formats/vhdx/crc32c.js';
import { currentHeader, HEADER_OFFSETS, serializeHeader } from '../../src/block/formats/vhdx/layout.js';
import type { VhdxNode } from '../../src/block/formats/vhdx/node.js';
import { mustRun, qemuImg, qemuIo, scratchDir } from '../helpers/peers.js';
import { describeMismatch, readImageWithQemu, readImageWithTsemu } from '../helpers/images.js';
import { assertInfoMatches, assertMapMatches, qemuAgrees, qemuHelpWithUuid, tsemuReadsAsQemu, writeScript } from './support.js';
import { assertReportsMatchAndClean } from './image-checks.js';

const MiB = 1 << 20;
const WRITES = [
  { offset: 0, length: 4096 },
  { offset: 8 * MiB - 512, length: 1024 }, // across a block boundary (8 MiB blocks)
  { offset: 3 * MiB + 12345, length: 70000 },
  { offset: 16 * MiB, length: 8 * MiB }, // one whole block
  { offset: 100, length: 10 }, // rewrite inside a stored block
];

for (const options of ['', 'subformat=fixed', 'block_state_zero=off', 'subformat=fixed,block_state_zero=off', 'block_size=1M,log_size=2M']) {
  test(`vhdx ${options || 'defaults'}: tsemu creates and writes, qemu-img checks and compares`, async () => {
    const { dir, cleanup } = await scratchDir();
    try {
      const file = path.join(dir, 'a.vhdx');
      const size = 24 * MiB + 512;
      const opts = options ? [options] : [];
      const mine = await createImage({ filename: file, format: 'vhdx', size: String(size), options: opts });
      const q = await mustRun(qemuImg(['create', '-f', 'vhdx', ...opts.flatMap((o) => ['-o', o]), path.join(dir, 'q.vhdx'), String(size)]), 'qemu-img create');
      assert.equal(`${mine.replace(file, path.join(dir, 'q.vhdx'))}\n`, q.stdout);
      await assertInfoMatches(file);
      const expected = await writeScript(file, size, WRITES, 'vhdx');
      await qemuAgrees(file, 'vhdx', expected, dir);
      await assertReportsMatchAndClean(file, checkVhdx);
    } finally {
      await cleanup();
    }
  });
}

test('vhdx: a sector bitmap entry between chunks (1 MiB blocks, past 4 GiB) maps blocks where qemu-img does', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'big.vhdx');
    const size = 4 * 1024 * MiB + 3 * MiB;
    await createImage({ filename: file, format: 'vhdx', size: String(size), options: ['block_size=1M'] });
    const expected = await writeScript(file, size, [{ offset: 4 * 1024 * MiB - 4096, length: 2 * MiB }, { offset: 10 * MiB, length: 4096 }], 'vhdx');
    await mustRun(qemuImg(['check', file]), 'qemu-img check');
    const at = 4 * 1024 * MiB - 4096;
    await mustRun(qemuIo(['-c', `read -P 0 0 ${10 * MiB}`, '-c', `read -P 0 ${4 * 1024 * MiB + 2 * MiB} ${MiB}`, file]), 'qemu-io zero reads');
    const img = await openImage(file, { readOnly: true });
    const back = new Uint8Array(2 * MiB);
    await img.read(at, back);
    await closeImage(img);
    assert.deepEqual(back, expected.pieces[0]!.data);
    // qemu-io writes past the chunk boundary, tsemu reads them.
    await mustRun(qemuIo(['-c', `write -P 0x77 ${4 * 1024 * MiB + 2 * MiB} 64k`, file]), 'qemu-io write');
    const img2 = await openImage(file, { readOnly: true });
    const q = new Uint8Array(64 * 1024);
    await img2.read(4 * 1024 * MiB + 2 * MiB, q);
    await closeImage(img2);
    assert.ok(q.every((b) => b === 0x77));
  } finally {
    await cleanup();
  }
});

test('vhdx: qemu-img creates, qemu-io writes, tsemu reads the same bytes and info, then writes more', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    for (const options of ['subformat=dynamic', 'subformat=fixed', 'subformat=fixed,block_state_zero=off', 'block_size=1M', 'block_size=32M,block_state_zero=off']) {
      const file = path.join(dir, `q-${options.replace(/[=,]/g, '_')}.vhdx`);
      await mustRun(qemuImg(['create', '-q', '-f', 'vhdx', '-o', options, file, '19M']), 'qemu-img create');
      await mustRun(qemuIo(['-c', 'write -P 0x5a 1000 300k', '-c', 'write -P 0xa5 9M 1M', '-c', 'write -z 9M 4k', file]), 'qemu-io');
      const mine = await readImageWithTsemu(file);
      const theirs = await readImageWithQemu(file, dir, 'vhdx');
      assert.equal(describeMismatch(file, mine, theirs), null);
      await assertReportsMatchAndClean(file, checkVhdx);
      await assertMapMatches(file);
      const img = await openImage(file);
      await img.write(17 * MiB, new Uint8Array(5000).fill(0xc3));
      await img.write(1024, new Uint8Array(512).fill(0x3c));
      await closeImage(img);
      await mustRun(qemuImg(['check', file]), 'qemu-img check after tsemu writes');
      await tsemuReadsAsQemu(file, 'vhdx', dir);
      await mustRun(qemuIo(['-c', 'read -P 0xc3 17M 5000', '-c', 'read -P 0x3c 1024 512', '-c', 'read -P 0x5a 1536 1000', file]), 'qemu-io reads tsemu writes');
    }
  } finally {
    await cleanup();
  }
});

test('vhdx: -o help, option errors and disk ids', async () => {
  const help = await mustRun(qemuImg(['create', '-f', 'vhdx', '-o', 'help']), 'qemu-img -o help');
  assert.equal(createOptionsHelp('vhdx'), qemuHelpWithUuid(help.stdout));
  const { dir, cleanup } = await scratchDir();
  try {
    const cases: [string[], string][] = [
      [['subformat=foo'], '5M'], [[], '65T'], [['block_size=3M'], '5M'], [['log_size=0'], '5M'],
      [['block_state_zero=maybe'], '5M'], [['cluster_size=64k'], '5M'],
    ];
    for (const [options, size] of cases) {
      const name = path.join(dir, 'x.vhdx');
      const qr = await qemuImg(['create', '-q', '-f', 'vhdx', ...options.flatMap((o) => ['-o', o]), name, size]);
      const err = await createImage({ filename: name, format: 'vhdx', size, options }).then(() => null, (e: Error) => e.message);
      assert.equal(`qemu-img: ${err}\n`, qr.stderr, options.join(','));
    }
    for (const [options, blockSize] of [[['block_size=700k'], MiB], [['block_size=1500k'], 2 * MiB], [['block_size=512M'], 256 * MiB]] as const) {
      const file = path.join(dir, `b${blockSize}.vhdx`);
      await createImage({ filename: file, format: 'vhdx', size: '5M', options: [...options] });
      await assertInfoMatches(file);
      const img = await openImage(file, { readOnly: true });
      assert.equal(img.clusterSize, blockSize);
      await closeImage(img);
    }
    const ids = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const file = path.join(dir, `u${i}.vhdx`);
      await createImage({ filename: file, format: 'vhdx', size: '1M', options: [] });
      const img = await openImage(file, { readOnly: true });
      ids.add(img.diskUuid!);
      await closeImage(img);
    }
    assert.equal(ids.size, 3);
    const given = '0123abcd-89ab-4def-8123-456789abcdef';
    const file = path.join(dir, 'given.vhdx');
    await createImage({ filename: file, format: 'vhdx', size: '1M', options: [`uuid=${given}`] });
    const img = await openImage(file, { readOnly: true });
    assert.equal(img.diskUuid, given);
    await closeImage(img);
    // Stored with its first three fields little-endian.
    const raw = await readFile(file);
    assert.ok(raw.includes(Buffer.from('cdab2301ab89ef4d8123456789abcdef', 'hex')));
  } finally {
    await cleanup();
  }
});

test('vhdx: qemu-img does not measure vhdx, and neither does tsemu', async () => {
  const q = await qemuImg(['measure', '-O', 'vhdx', '--size', '10M']);
  assert.match(q.stderr, /does not support size measurement/);
  await assert.rejects(() => measureImage({ outputFormat: 'vhdx', size: '10M', options: [] }), /does not support size measurement/);
});

/**
 * Replays the log of `file` both ways: qemu-img check -r all on a copy, and a
 * writable open in tsemu on `file` itself; both images must then pass
 * qemu-img check and hold the same content.
 */
async function replayBothWays(file: string): Promise<void> {
  const copy = `${file}.qemu-replay`;
  await copyFile(file, copy);
  await closeImage(await openImage(file));
  await mustRun(qemuImg(['check', '-r', 'all', copy]), 'qemu-img check -r all');
  await mustRun(qemuImg(['check', file]), "qemu-img check after tsemu's replay");
  await mustRun(qemuImg(['compare', file, copy]), 'qemu-img compare both replays');
}

/**
 * Makes `file` (written by qemu-io, blocks stored) dirty: its first BAT sector is
 * zeroed in place, and the log holds an entry (tsemu's log writer) that restores
 * it, with the header's LogGuid naming the log.
 */
async function makeDirty(file: string): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    const slots = await Promise.all(HEADER_OFFSETS.map(async (at) => {
      const b = new Uint8Array(4096);
      await fh.read(b, 0, 4096, at);
      return b;
    }));
    const { header, slot } = currentHeader(slots);
    const batOffset = 2 * MiB; // qemu-img's layout with a 1 MiB log
    const sector = new Uint8Array(4096);
    await fh.read(sector, 0, 4096, batOffset);
    assert.notEqual(sector[0], 0, 'the first block is stored');
    const logGuid = '5b2c7a10-3e4f-4a5b-8c6d-7e8f90a1b2c3';
    const { size } = await fh.stat();
    const entry = buildLogEntry({ logGuid, sequence: 7, tail: 0, flushedFileOffset: size, lastFileOffset: size, writes: [{ fileOffset: batOffset, data: sector }] });
    await fh.write(entry, 0, entry.length, header.logOffset);
    await fh.write(new Uint8Array(4096), 0, 4096, batOffset);
    const next = serializeHeader({ ...header, logGuid, sequence: header.sequence + 1n });
    await fh.write(next, 0, next.length, HEADER_OFFSETS[1 - slot]);
  } finally {
    await fh.close();
  }
}

test('vhdx log: a dirty image is refused read-only, replayed by a writable open (tsemu and qemu-img check -r all) and then clean', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'dirty.vhdx');
    await mustRun(qemuImg(['create', '-q', '-f', 'vhdx', file, '20M']), 'qemu-img create');
    await mustRun(qemuIo(['-c', 'write -P 0x6b 0 1M', '-c', 'write -P 0x6c 9M 1M', file]), 'qemu-io');
    const clean = await readImageWithQemu(file, dir, 'vhdx');
    await makeDirty(file);
    const copy = path.join(dir, 'dirty-copy.vhdx');
    await copyFile(file, copy);

    const q = await qemuImg(['info', file]);
    assert.notEqual(q.code, 0);
    assert.match(q.stderr, /opened read-only, but contains a log that needs to be replayed/);
    await assert.rejects(() => openImage(file, { readOnly: true }), /VHDX image file '.*dirty\.vhdx' opened read-only, but contains a log that needs to be replayed\nTo replay the log/);
    const roCheck = await checkImage({ filename: file, log: () => {} }).then(() => null, (e: Error) => e.message);
    assert.equal(roCheck, `Could not open '${file}': VHDX image file '${file}' opened read-only, but contains a log that needs to be replayed\n` +
      `To replay the log, run:\ntsemu img check -r all '${file}'`);

    // tsemu: check -r all replays (one fixed corruption), as qemu-img reports it.
    const lines: string[] = [];
    const fixed = await checkImage({ filename: file, repair: 'all', log: (l) => lines.push(l) });
    assert.equal(fixed.check['corruptions-fixed'], 1);
    assert.equal(fixed.exitCode, 0);
    await mustRun(qemuImg(['check', file]), 'qemu-img check after tsemu replay');
    assert.equal(describeMismatch(file, await readImageWithTsemu(file), clean), null);

    // qemu-img replays tsemu's log entry the same way.
    await mustRun(qemuImg(['check', '-r', 'all', copy]), 'qemu-img check -r all');
    assert.equal(describeMismatch(copy, await readImageWithQemu(copy, dir, 'vhdx'), clean), null);
  } finally {
    await cleanup();
  }
});

test('vhdx log: a tsemu process stopped after a flush leaves a log that replays (tsemu and qemu-img) to the flushed content', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'stopped.vhdx');
    await createImage({ filename: file, format: 'vhdx', size: '40M', options: ['block_size=1M'] });
    const img = (await openImage(file)) as VhdxNode;
    const data = new Uint8Array(3 * MiB + 4096).fill(0x42);
    await img.write(5 * MiB - 4096, data);
    await img.write(30 * MiB, data.subarray(0, 4096));
    await img.flush();
    // A crash: the file is closed without the image's close (no log reset).
    await (img.file as FileNode).close();
    assert.match((await qemuImg(['info', file])).stderr, /contains a log that needs to be replayed/);
    await replayBothWays(file);
    await mustRun(qemuIo(['-c', `read -P 0x42 ${5 * MiB - 4096} ${3 * MiB + 4096}`, '-c', `read -P 0x42 ${30 * MiB} 4096`, '-c', `read -P 0 0 ${5 * MiB - 4096}`, file]), 'qemu-io reads');
  } finally {
    await cleanup();
  }
});

test('vhdx: UNDEFINED, UNMAPPED (and 0.95 UNMAPPED) blocks read as zeroes in tsemu as in qemu-img', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'states.vhdx');
    await mustRun(qemuImg(['create', '-q', '-f', 'vhdx', '-o', 'block_size=1M', file, '8M']), 'qemu-img create');
    await mustRun(qemuIo(['-c', 'write -P 0x21 0 4M', file]), 'qemu-io');
    const bytes = await readFile(file);
    const bat = 2 * MiB;
    for (const [block, state] of [[0, 1], [1, 3], [2, 5]] as const) bytes.writeUInt32LE((bytes.readUInt32LE(bat + block * 8) & ~7) | state, bat + block * 8);
    await writeFile(file, bytes);
    await tsemuReadsAsQemu(file, 'vhdx', dir);
    const data = await readImageWithTsemu(file);
    assert.ok(data.subarray(0, 3 * MiB).every((b) => b === 0) && data.subarray(3 * MiB, 4 * MiB).every((b) => b === 0x21));
  } finally {
    await cleanup();
  }
});

test('vhdx log: zero descriptors zero their range on replay, in tsemu as in qemu-img', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'zero.vhdx');
    await mustRun(qemuImg(['create', '-q', '-f', 'vhdx', file, '20M']), 'qemu-img create');
    await mustRun(qemuIo(['-c', 'write -P 0x33 0 2M', file]), 'qemu-io');
    const bytes = await readFile(file);
    const { header, slot } = currentHeader(HEADER_OFFSETS.map((at) => bytes.subarray(at, at + 4096)));
    const block0 = Number(bytes.readBigUInt64LE(2 * MiB) >> 20n) * MiB;
    const logGuid = '7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d';
    // Two data descriptors built by tsemu's writer; the second becomes a zero descriptor of 1 MiB.
    const sector = bytes.subarray(2 * MiB, 2 * MiB + 4096);
    const entry = Buffer.from(buildLogEntry({
      logGuid, sequence: 1, tail: 0, flushedFileOffset: bytes.length, lastFileOffset: bytes.length,
      writes: [{ fileOffset: 2 * MiB, data: sector }, { fileOffset: block0 + 4096, data: sector }],
    }));
    const zero = 64 + 32;
    entry.write('zero', zero, 'latin1');
    entry.writeUInt32LE(0, zero + 4);
    entry.writeBigUInt64LE(BigInt(MiB), zero + 8);
    entry.writeUInt32LE(0, 4);
    entry.writeUInt32LE(crc32c(entry, 4), 4);
    bytes.set(entry, header.logOffset);
    bytes.set(serializeHeader({ ...header, logGuid, sequence: header.sequence + 1n }), HEADER_OFFSETS[1 - slot]);
    await writeFile(file, bytes);
    await replayBothWays(file);
    await mustRun(qemuIo(['-c', 'read -P 0x33 0 4096', '-c', `read -P 0 4096 ${MiB}`, '-c', `read -P 0x33 ${MiB + 4096} ${MiB - 4096}`, file]), 'qemu-io reads');
  } finally {
    await cleanup();
  }
});

test('vhdx log: many flushed allocations fill the log and start new generations; a crash after them replays right', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'gens.vhdx');
    const blocks = 150;
    await createImage({ filename: file, format: 'vhdx', size: String(blocks * MiB), options: ['block_size=1M'] });
    const img = await openImage(file);
    for (let b = 0; b < blocks; b++) {
      await img.write(b * MiB + 512 * (b % 7), new Uint8Array(512).fill(b + 1));
      await img.flush(); // one BAT sector through the log each time: 8 KiB entries, 128 to a 1 MiB log
    }
    await (img.file as FileNode).close(); // a crash: no log reset
    await replayBothWays(file);
    const data = await readImageWithTsemu(file);
    for (let b = 0; b < blocks; b++) {
      const at = b * MiB + 512 * (b % 7);
      assert.ok(data.subarray(at, at + 512).every((x) => x === b + 1), `block ${b}`);
    }
  } finally {
    await cleanup();
  }
});

test('vhdx: 4096-byte logical sectors give a chunk ratio of 32768 with 1 MiB blocks (qemu-img 7.2 refuses such images)', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, '4k.vhdx');
    await createImage({ filename: file, format: 'vhdx', size: '40G', options: ['block_size=1M'] });
    const fh = await open(file, 'r+');
    const lss = Buffer.alloc(4);
    lss.writeUInt32LE(4096);
    await fh.write(lss, 0, 4, 3 * MiB + 65568); // the logical sector size item
    await fh.close();
    const block = 5120; // past the chunk boundary that 512-byte sectors put at 4096 blocks
    const img = await openImage(file);
    await img.write(block * MiB + 4096, new Uint8Array(8192).fill(0x4b));
    await closeImage(img);
    const bat = (await readFile(file)).subarray(2 * MiB, 3 * MiB);
    assert.equal(bat.readUInt32LE(block * 8) & 7, 6, 'payload entry at index 5120 (no sector bitmap entry before it)');
    assert.equal(bat.readUInt32LE((block + 1) * 8) & 7, 2, 'the entry after it is untouched');
    const back = new Uint8Array(8192);
    const again = await openImage(file, { readOnly: true });
    await again.read(block * MiB + 4096, back);
    await closeImage(again);
    assert.ok(back.every((b) => b === 0x4b));
  } finally {
    await cleanup();
  }
});
