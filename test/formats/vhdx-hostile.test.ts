/**
 * Hostile VHDX images: damaged checksums, regions that overlap or lie past the
 * end, BAT entries past the end, inside the metadata or sharing a place (check
 * counts them as qemu-img does), absurd block and disk sizes, metadata items
 * outside their region, and logs whose entries have bad lengths, bad targets or
 * expect a longer file. Each is a clear error that leaves the file unchanged, or,
 * where the specification says the damage is survivable (one header or one
 * region table bad, invalid log entries), an image that still reads right.
 * Seeded random damage to the metadata areas (of an image with a log to replay)
 * never gives anything but a working image or such an error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { closeImage, openImage } from '../../src/block/open.js';
import { BlockRequestError, ImageFormatError } from '../../src/block/node.js';
import { FileNode } from '../../src/block/protocols/file.js';
import { checkImage, formatCheckJson } from '../../src/block/ops/check.js';
import { buildLogEntry } from '../../src/block/formats/vhdx/log.js';
import {
  BAT_REGION_GUID,
  currentHeader,
  HEADER_OFFSETS,
  METADATA_REGION_GUID,
  type Region,
  REGION_TABLE_OFFSETS,
  serializeHeader,
  serializeRegionTable,
  type VhdxHeader,
} from '../../src/block/formats/vhdx/layout.js';
import { mustRun, qemuImg, qemuIo, scratchDir } from '../helpers/peers.js';
import { readImageWithTsemu } from '../helpers/images.js';
import { makeRng, sha256File } from '../helpers/pattern.js';
import { assertHostileOpenFails } from './image-checks.js';

const MiB = 1 << 20;
// qemu-img's layout of a 20 MiB image: log at 1 MiB, BAT at 2 MiB, metadata at 3 MiB, block 0 at 8 MiB.
const BAT = 2 * MiB;
const METADATA = 3 * MiB;
const FILE_PARAMETERS = METADATA + 65536;
const DISK_SIZE_ITEM = METADATA + 65544;
const LOG_GUID = '0f1e2d3c-4b5a-4697-8877-665544332211';

function setHeader(b: Buffer, changes: Partial<VhdxHeader>): void {
  const { header } = currentHeader(HEADER_OFFSETS.map((at) => b.subarray(at, at + 4096)));
  HEADER_OFFSETS.forEach((at, i) => b.set(serializeHeader({ ...header, ...changes, sequence: header.sequence + 1n + BigInt(i) }), at));
}

function setRegions(b: Buffer, regions: Region[]): void {
  for (const at of REGION_TABLE_OFFSETS) b.set(serializeRegionTable(regions), at);
}

const REGIONS: Region[] = [
  { guid: BAT_REGION_GUID, offset: BAT, length: MiB, required: true },
  { guid: METADATA_REGION_GUID, offset: METADATA, length: MiB, required: true },
];

/** A log (LogGuid set) holding one entry built from `fields`, patched by `patch` after the CRC if given. */
function setLog(b: Buffer, fields: Partial<Parameters<typeof buildLogEntry>[0]>, patch?: (entry: Buffer) => void): void {
  const entry = Buffer.from(buildLogEntry({
    logGuid: LOG_GUID,
    sequence: 3,
    tail: 0,
    flushedFileOffset: b.length,
    lastFileOffset: b.length,
    writes: [{ fileOffset: BAT, data: b.subarray(BAT, BAT + 4096) }],
    ...fields,
  }));
  patch?.(entry);
  b.set(entry, MiB);
  setHeader(b, { logGuid: LOG_GUID });
}

/** Every 4 KiB sector of the (1 MiB) log starts an entry header claiming the whole log: n² checksum work unless bounded. */
function fillLogWithWholeLogEntries(b: Buffer): void {
  setLog(b, {});
  const first = Buffer.from(b.subarray(MiB, MiB + 64));
  for (let at = 0; at < MiB; at += 4096) {
    first.writeUInt32LE(MiB, 8);
    first.writeUInt32LE(at / 4096 + 1, 16);
    b.set(first, MiB + at);
  }
}

const FAILS: { name: string; patch: (b: Buffer) => Buffer | void; pattern: RegExp }[] = [
  { name: 'both headers with bad checksums', patch: (b) => { b[HEADER_OFFSETS[0] + 100]! ^= 1; b[HEADER_OFFSETS[1] + 100]! ^= 1; }, pattern: /no valid header \(header 1: checksum mismatch; header 2: checksum mismatch\)/ },
  { name: 'both region tables with bad checksums', patch: (b) => { b[REGION_TABLE_OFFSETS[0] + 40]! ^= 1; b[REGION_TABLE_OFFSETS[1] + 40]! ^= 1; }, pattern: /no valid region table/ },
  { name: 'BAT region overlapping the metadata region', patch: (b) => setRegions(b, [{ ...REGIONS[0]!, offset: METADATA }, REGIONS[1]!]), pattern: /metadata region overlaps the BAT region/ },
  { name: 'BAT region overlapping the log', patch: (b) => setRegions(b, [{ ...REGIONS[0]!, offset: MiB }, REGIONS[1]!]), pattern: /BAT region overlaps the log/ },
  { name: 'region past the end of the file', patch: (b) => setRegions(b, [{ ...REGIONS[0]!, offset: 2 ** 40 }, REGIONS[1]!]), pattern: /BAT region is past the end of the file/ },
  { name: 'unaligned region', patch: (b) => setRegions(b, [{ ...REGIONS[0]!, offset: BAT + 4096 }, REGIONS[1]!]), pattern: /not aligned to 1 MiB/ },
  { name: 'unknown required region', patch: (b) => setRegions(b, [...REGIONS, { guid: '11111111-2222-3333-4444-555555555555', offset: 4 * MiB, length: MiB, required: true }]), pattern: /unknown required region/ },
  { name: 'BAT entry past the end of the file', patch: (b) => { b.writeUInt32LE(((1000 << 20) | 6) >>> 0, BAT); }, pattern: /BAT entry 0 start offset 1048576000 points after end of file/ },
  { name: 'BAT entry inside the metadata region', patch: (b) => { b.writeUInt32LE(((3 << 20) | 6) >>> 0, BAT); }, pattern: /BAT entry 0 offset 3145728 overlaps the metadata region/ },
  { name: 'two BAT entries with one place', patch: (b) => { b.copy(b, BAT + 8, BAT, BAT + 8); }, pattern: /BAT entries 0 and 1 both point to offset 8388608/ },
  { name: 'BAT entry past any file', patch: (b) => { b.writeUInt32LE(0x7fffffff, BAT + 4); b.writeUInt32LE(6, BAT); }, pattern: /BAT entry 0 points past any file/ },
  { name: 'block size 3 MiB', patch: (b) => { b.writeUInt32LE(3 * MiB, FILE_PARAMETERS); }, pattern: /block size 3145728/ },
  { name: 'block size 2 GiB', patch: (b) => { b.writeUInt32LE(0x80000000, FILE_PARAMETERS); }, pattern: /block size 2147483648/ },
  { name: 'block size 0', patch: (b) => { b.writeUInt32LE(0, FILE_PARAMETERS); }, pattern: /block size 0/ },
  { name: 'virtual disk size of 2^52 bytes', patch: (b) => { b.writeUInt32LE(0x100000, DISK_SIZE_ITEM + 4); }, pattern: /invalid VHDX: virtual disk size 45035996/ },
  { name: 'disk size larger than the BAT maps', patch: (b) => { b.writeUInt32LE(0x1000, DISK_SIZE_ITEM + 4); }, pattern: /the BAT region holds 131072 entries, the disk needs/ },
  { name: 'metadata item outside the region', patch: (b) => { b.writeUInt32LE(0x7fffff00, METADATA + 32 + 16); }, pattern: /outside the metadata region/ },
  { name: 'no metadata signature', patch: (b) => { b.fill(0, METADATA, METADATA + 8); }, pattern: /no "metadata" signature/ },
  { name: 'log past the end of the file', patch: (b) => setHeader(b, { logOffset: 2 ** 40 }), pattern: /the log is past the end of the file/ },
  { name: 'log entry writing into the header area', patch: (b) => setLog(b, { writes: [{ fileOffset: 0, data: new Uint8Array(4096) }] }), pattern: /log entry 3 writes 4096 bytes at 0, outside/ },
  { name: 'log entry expecting a longer file', patch: (b) => setLog(b, { flushedFileOffset: b.length + MiB }), pattern: /expects a file of at least .* \(truncated image\?\)/ },
  { name: 'log entry growing the file by a petabyte', patch: (b) => setLog(b, { lastFileOffset: 2 ** 50 }), pattern: /grows the file to 1125899906842624 bytes/ },
  { name: 'log of entries that each claim the whole log', patch: (b) => fillLogWithWholeLogEntries(b), pattern: /too many overlapping entries to search/ },
  { name: 'partially present block without a parent', patch: (b) => { b.writeUInt32LE((b.readUInt32LE(BAT) & ~7) | 7, BAT); }, pattern: /block 0 is partially present/ },
  { name: 'differencing image', patch: (b) => { b.writeUInt32LE(2, FILE_PARAMETERS + 4); }, pattern: /metadata item a8d35f2d-b30b-454d-abf7-d3d84834ab0c is missing|differencing/ },
  { name: 'file shorter than the header area', patch: (b) => b.subarray(0, 200 * 1024), pattern: /shorter than its header area/ },
  { name: 'not a VHDX', patch: (b) => { b.fill(0, 0, 8); }, pattern: /not a VHDX/ },
];

/** A qemu-img-made image (20 MiB: block 0 stored at 8 MiB) with 1 MiB of 0x61 at 0. */
async function baseImage(dir: string, size = '20M', options = 'block_size=0'): Promise<string> {
  const file = path.join(dir, 'h.vhdx');
  await mustRun(qemuImg(['create', '-q', '-f', 'vhdx', '-o', options, file, size]), 'qemu-img create');
  await mustRun(qemuIo(['-c', 'write -P 0x61 0 1M', file]), 'qemu-io');
  return file;
}

for (const h of FAILS) {
  test(`vhdx hostile: ${h.name} is a clear error and the file is unchanged`, async () => {
    const { dir, cleanup } = await scratchDir();
    try {
      const file = await baseImage(dir);
      const bytes = await readFile(file);
      await writeFile(file, h.patch(bytes) ?? bytes);
      await assertHostileOpenFails(file, 'vhdx', h.pattern, 2 * MiB);
    } finally {
      await cleanup();
    }
  });
}

/** Damage the specification lets a reader survive: the image still reads its data, read-only and read-write. */
const SURVIVES: { name: string; patch: (b: Buffer) => void }[] = [
  { name: 'header 1 with a bad checksum', patch: (b) => { b[HEADER_OFFSETS[0] + 100]! ^= 1; } },
  { name: 'header 2 with a bad checksum', patch: (b) => { b[HEADER_OFFSETS[1] + 100]! ^= 1; } },
  { name: 'region table 1 with a bad checksum', patch: (b) => { b[REGION_TABLE_OFFSETS[0] + 40]! ^= 1; } },
  { name: 'log entry of length 0', patch: (b) => setLog(b, {}, (e) => e.writeUInt32LE(0, 8)) },
  { name: 'log entry longer than the log', patch: (b) => setLog(b, {}, (e) => e.writeUInt32LE(0xfffff000, 8)) },
  { name: 'log entry length not a multiple of 4 KiB', patch: (b) => setLog(b, {}, (e) => e.writeUInt32LE(8192 + 100, 8)) },
  { name: 'log entry with 2^32-1 descriptors', patch: (b) => setLog(b, {}, (e) => e.writeUInt32LE(0xffffffff, 24)) },
  { name: 'log entry with a bad checksum', patch: (b) => setLog(b, {}, (e) => { e[5]! ^= 1; }) },
  { name: 'log entry whose tail points past the log', patch: (b) => setLog(b, { tail: 0xfffff000 }) },
];

for (const s of SURVIVES) {
  test(`vhdx hostile: ${s.name} is survived (no replay, data intact)`, async () => {
    const { dir, cleanup } = await scratchDir();
    try {
      const file = await baseImage(dir);
      const bytes = await readFile(file);
      s.patch(bytes);
      await writeFile(file, bytes);
      const before = await sha256File(file);
      const data = await readImageWithTsemu(file, { format: 'vhdx' });
      assert.ok(data.subarray(0, MiB).every((x) => x === 0x61) && data.subarray(MiB).every((x) => x === 0));
      assert.equal(await sha256File(file), before, 'a read-only open writes nothing');
      await closeImage(await openImage(file, { format: 'vhdx' }));
      await mustRun(qemuImg(['check', file]), 'qemu-img check after a writable open');
    } finally {
      await cleanup();
    }
  });
}

test('vhdx hostile: check counts each misplaced block as qemu-img does, with its line', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = await baseImage(dir);
    const bytes = await readFile(file);
    bytes.writeUInt32LE(((1000 << 20) | 6) >>> 0, BAT);
    await writeFile(file, bytes);
    const q = await qemuImg(['check', '--output=json', file]);
    const lines: string[] = [];
    const mine = await checkImage({ filename: file, log: (l) => lines.push(l) });
    assert.equal(mine.exitCode, q.code);
    assert.deepEqual(JSON.parse(formatCheckJson(mine.check)), JSON.parse(q.stdout));
    assert.ok(q.stderr.includes(`qemu-img: ${lines[0]}\n`), q.stderr);
    assert.equal(lines.length, 1);
  } finally {
    await cleanup();
  }
});

test('vhdx hostile: random damage to the metadata areas opens, reads and writes, or fails with a clear error', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = await baseImage(dir, '4M', 'block_size=1M');
    // A log to replay too: tsemu writes, flushes and stops without closing.
    const img = await openImage(file, { format: 'vhdx' });
    await img.write(3 * MiB, new Uint8Array(8192).fill(0x62));
    await img.flush();
    await (img.file as FileNode).close();
    const base = await readFile(file);
    const rng = makeRng(0xbad);
    const areas = [[0, 8], [HEADER_OFFSETS[0], 4096], [HEADER_OFFSETS[1], 4096], [REGION_TABLE_OFFSETS[0], 512], [REGION_TABLE_OFFSETS[1], 512],
      [MiB, 16384], [BAT, 64], [METADATA, 256], [FILE_PARAMETERS, 64]] as const;
    const damaged = path.join(dir, 'damaged.vhdx');
    for (let i = 0; i < 60; i++) {
      const b = Buffer.from(base);
      for (let k = rng.int(1, 4); k > 0; k--) {
        const [start, length] = areas[rng.int(0, areas.length - 1)]!;
        b[start + rng.int(0, length - 1)] = rng.int(0, 255);
      }
      await writeFile(damaged, b);
      for (const readOnly of [true, false]) {
        try {
          const node = await openImage(damaged, { format: 'vhdx', readOnly, noFlush: true });
          try {
            await node.read(0, new Uint8Array(Math.min(node.size(), 8 * MiB)));
            if (!readOnly) await node.write(2 * MiB, new Uint8Array(4096).fill(9));
          } finally {
            await closeImage(node);
          }
        } catch (e) {
          assert.ok(e instanceof ImageFormatError || e instanceof BlockRequestError, `damage ${i}: ${(e as Error).stack}`);
        }
      }
    }
  } finally {
    await cleanup();
  }
});
