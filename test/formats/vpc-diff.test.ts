/**
 * Differencing VHDs (disk type 4), which qemu-img 7.2 can neither create nor
 * follow to their parent: tsemu creates them with -b/-F vpc (parent unique id and
 * file name in the dynamic header, W2ru/W2ku locators), `img info` shows the
 * backing file, and reads fall through to the parent wherever the child's sector
 * bitmap says so, after sub-sector writes, writes across blocks and zeroing. The
 * same content as qemu-io writing a copy of the parent. qemu-img opens the child
 * as the plain dynamic disk it sees (its own sectors only) and reads exactly what
 * tsemu reads with the parent detached. libvhdi (libvhdi-utils' vhdiinfo and
 * the python3-libvhdi bindings), an independent reader that follows parents,
 * sees the differencing type, the parent's id and name, and the same content
 * (for writes in whole 4 KiB runs: libvhdi 20210425 misreads a bitmap byte whose
 * bits are mixed). A replaced parent, a parent of another format, a size
 * mismatch and a locator past the end of the file are clear errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createImage } from '../../src/block/ops/create.js';
import { collectImageInfo } from '../../src/block/ops/info.js';
import { closeImage, openImage } from '../../src/block/open.js';
import { mustRun, qemuImg, qemuIo, requirePeer, runProgram, scratchDir, tsemu } from '../helpers/peers.js';
import { describeMismatch, readImageWithQemu, readImageWithTsemu } from '../helpers/images.js';

const MiB = 1 << 20;

/** A qemu-img dynamic VHD with data in three of its four blocks. */
async function makeParent(file: string): Promise<void> {
  await mustRun(qemuImg(['create', '-q', '-f', 'vpc', file, '8M']), 'qemu-img create');
  await mustRun(qemuIo(['-f', 'vpc', '-c', 'write -P 0x11 0 3M', '-c', 'write -P 0x22 5M 1M', file]), 'qemu-io');
}

/** A parent (makeParent) and an empty differencing child made by tsemu, in `dir`. */
async function parentAndChild(dir: string): Promise<{ base: string; child: string }> {
  const base = path.join(dir, 'base.vhd');
  const child = path.join(dir, 'child.vhd');
  await makeParent(base);
  await createImage({ filename: child, format: 'vpc', backingFile: 'base.vhd', backingFormat: 'vpc', options: [] });
  return { base, child };
}

/** The writes of the tests, as qemu-io commands and as tsemu calls. */
const WRITES: { io: string; apply: (img: Awaited<ReturnType<typeof openImage>>) => Promise<void> }[] = [
  { io: 'write -P 0x33 1000 100', apply: (img) => img.write(1000, new Uint8Array(100).fill(0x33)) },
  { io: `write -P 0x44 ${2 * MiB - 10} 30`, apply: (img) => img.write(2 * MiB - 10, new Uint8Array(30).fill(0x44)) },
  { io: `write -P 0x55 ${7 * MiB} 4096`, apply: (img) => img.write(7 * MiB, new Uint8Array(4096).fill(0x55)) },
  { io: `write -z ${5 * MiB + 4096} 8192`, apply: (img) => img.writeZeroes(5 * MiB + 4096, 8192) },
  { io: 'write -P 0x66 1050 10', apply: (img) => img.write(1050, new Uint8Array(10).fill(0x66)) },
];

test('vpc differencing: create with -b, info shows the parent, reads fall through to it', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const base = path.join(dir, 'base.vhd');
    const child = path.join(dir, 'child.vhd');
    await makeParent(base);
    const q72 = await qemuImg(['create', '-f', 'vpc', '-b', 'base.vhd', '-F', 'vpc', path.join(dir, 'q.vhd')]);
    assert.match(q72.stderr, /Backing file not supported for file format 'vpc'/, 'qemu-img 7.2 cannot make one');
    const r = await tsemu(['img', 'create', '-f', 'vpc', '-b', 'base.vhd', '-F', 'vpc', child]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /fmt=vpc size=8390656 backing_file=base.vhd backing_fmt=vpc/);
    const [info] = await collectImageInfo(child);
    assert.equal(info!['backing-filename'], 'base.vhd');
    assert.equal(info!['full-backing-filename'], base);
    assert.equal(info!['backing-filename-format'], 'vpc');
    const human = await tsemu(['img', 'info', child]);
    assert.match(human.stdout, /backing file: base\.vhd \(actual path: .*base\.vhd\)\nbacking file format: vpc/);
    assert.deepEqual(await readImageWithTsemu(child), await readImageWithTsemu(base), 'an empty child reads as its parent');

    // The header: differencing type, the parent's unique id, the locators.
    const bytes = await readFile(child);
    const parentBytes = await readFile(base);
    assert.equal(bytes.readUInt32BE(60), 4, 'disk type 4');
    assert.deepEqual(bytes.subarray(512 + 40, 512 + 56), parentBytes.subarray(68, 84), 'parent unique id');
    assert.equal(bytes.subarray(512 + 64, 512 + 64 + 16).toString('utf16le').length, 8);
    assert.equal(bytes.subarray(512 + 576, 512 + 580).toString('latin1'), 'W2ru');
    const at = Number(bytes.readBigUInt64BE(512 + 576 + 16));
    assert.equal(bytes.subarray(at, at + bytes.readUInt32BE(512 + 576 + 8)).toString('utf16le'), '.\\base.vhd');

    const img = await openImage(child);
    for (const w of WRITES) await w.apply(img);
    await closeImage(img);
    const expected = path.join(dir, 'expected.vhd');
    await copyFile(base, expected);
    await mustRun(qemuIo(['-f', 'vpc', ...WRITES.flatMap((w) => ['-c', w.io]), expected]), 'qemu-io');
    const mine = await readImageWithTsemu(child);
    assert.equal(describeMismatch('child through tsemu', mine, await readImageWithQemu(expected, dir, 'vpc')), null);
    assert.deepEqual(await readImageWithTsemu(base), await readImageWithQemu(base, dir, 'vpc'), 'the parent is unchanged');

    // qemu-img 7.2 reads the child as a dynamic disk without parent: its own sectors, zeroes elsewhere.
    const q = JSON.parse((await mustRun(qemuImg(['info', '--output=json', '-f', 'vpc', child]), 'qemu-img info')).stdout);
    assert.equal(q['virtual-size'], 8390656);
    assert.equal(q.format, 'vpc');
    const alone = await readImageWithTsemu(child, { backing: false });
    assert.equal(describeMismatch('child alone', alone, await readImageWithQemu(child, dir, 'vpc')), null);
    assert.notDeepEqual(alone, mine);

    // Converting the child gives the whole disk, parent included.
    const flat = path.join(dir, 'flat.qcow2');
    assert.equal((await tsemu(['img', 'convert', '-O', 'qcow2', child, flat])).code, 0);
    await mustRun(qemuImg(['compare', '-F', 'vpc', flat, expected]), 'qemu-img compare');
  } finally {
    await cleanup();
  }
});

/** The whole disk of `child` (over `parent`) as libvhdi reads it, as a SHA-256. */
async function libvhdiDigest(parent: string, child: string): Promise<string> {
  requirePeer('vhdiinfo');
  const script = [
    'import hashlib, sys, pyvhdi',
    'p = pyvhdi.file(); p.open(sys.argv[1])',
    'c = pyvhdi.file(); c.open(sys.argv[2]); c.set_parent(p)',
    'print(hashlib.sha256(c.read_buffer(c.get_media_size())).hexdigest())',
  ].join('\n');
  // Debian's python3-libvhdi is a module of the system Python.
  return (await mustRun(runProgram('/usr/bin/python3', ['-c', script, parent, child]), 'python3 pyvhdi')).stdout.trim();
}

test('vpc differencing: libvhdi reads what tsemu writes, parent included', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const { base, child } = await parentAndChild(dir);
    const img = await openImage(child);
    await img.write(4096, new Uint8Array(8192).fill(0x71));
    await img.write(2 * MiB - 4096, new Uint8Array(12288).fill(0x72));
    await img.writeZeroes(5 * MiB + 4096, 8192);
    await img.write(7 * MiB, new Uint8Array(4096).fill(0x73));
    await closeImage(img);
    const parent = await openImage(base, { readOnly: true });
    const parentId = parent.diskUuid;
    await closeImage(parent);
    const info = (await mustRun(runProgram('vhdiinfo', [child]), 'vhdiinfo')).stdout;
    assert.match(info, /Disk type\s*: Differential/);
    assert.match(info, new RegExp(`Parent identifier\\s*: ${parentId}`));
    assert.match(info, /Parent filename\s*: base\.vhd/);
    const mine = createHash('sha256').update(await readImageWithTsemu(child)).digest('hex');
    assert.equal(await libvhdiDigest(base, child), mine);
  } finally {
    await cleanup();
  }
});

test('vpc differencing: a child in another folder finds its parent through the relative locator', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const base = path.join(dir, 'base.vhd');
    await makeParent(base);
    await mkdir(path.join(dir, 'sub'));
    const child = path.join(dir, 'sub', 'child.vhd');
    await createImage({ filename: child, format: 'vpc', backingFile: '../base.vhd', backingFormat: 'vpc', options: [] });
    const [info] = await collectImageInfo(child);
    assert.equal(info!['backing-filename'], '../base.vhd');
    const img = await openImage(child);
    await img.write(3 * MiB, new Uint8Array(512).fill(9));
    await closeImage(img);
    const content = await readImageWithTsemu(child);
    assert.equal(content[3 * MiB], 9);
    assert.equal(content[0], 0x11);
    assert.equal(content[5 * MiB], 0x22);
  } finally {
    await cleanup();
  }
});

test('vpc differencing: wrong parents, formats and sizes, and a hostile locator, are clear errors', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const { base, child } = await parentAndChild(dir);

    const qcow = path.join(dir, 'base.qcow2');
    await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', qcow, '8M']), 'qemu-img create');
    const other = path.join(dir, 'other.vhd');
    await assert.rejects(
      createImage({ filename: other, format: 'vpc', backingFile: 'base.qcow2', backingFormat: 'qcow2', options: [] }),
      /The parent of a differencing VHD must be a VHD/,
    );
    await assert.rejects(
      createImage({ filename: other, format: 'vpc', size: '4M', backingFile: 'base.vhd', backingFormat: 'vpc', options: [] }),
      /A differencing VHD has the size of its parent \(8390656 bytes\), not 4194304/,
    );
    await assert.rejects(
      createImage({ filename: other, format: 'vpc', backingFile: 'base.vhd', backingFormat: 'vpc', options: ['subformat=fixed'] }),
      /Only dynamic VHD images can have a backing file/,
    );

    // A new VHD under the parent's name has another unique id.
    await mustRun(qemuImg(['create', '-q', '-f', 'vpc', base, '8M']), 'qemu-img create');
    await assert.rejects(readImageWithTsemu(child), /the parent's unique id .* is not .*the one this differencing disk records/);

    const bytes = await readFile(child);
    bytes.writeUInt32BE(0x7fff0000, 512 + 576 + 20); // W2ru data offset far past the end
    await writeFile(child, bytes);
    await assert.rejects(openImage(child, { readOnly: true }), /parent locator 0 \("W2ru"\) .* is past the end of the file/);
  } finally {
    await cleanup();
  }
});
