/**
 * Hostile VMDK inputs: damaged sparse headers, grain directories and tables past
 * the end of the file, truncated files, descriptors with absurd or unsupported
 * extents, a backing chain that names itself, stream images without their footer
 * or with broken grains. Each must be a clear error from opening or reading the
 * whole image (no crash, no hang), must leave the file unchanged, and where
 * qemu-img check fails, tsemu's check fails too.
 */
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { closeImage, openImage } from '../../src/block/open.js';
import { convertImage } from '../../src/block/ops/convert.js';
import { createImage } from '../../src/block/ops/create.js';
import { FileNode } from '../../src/block/protocols/file.js';
import { checkVmdk } from '../../src/block/formats/vmdk/check.js';
import { mustRun, qemuImg, qemuIo, scratchDir } from '../helpers/peers.js';
import { sha256File } from '../helpers/pattern.js';

const MiB = 1 << 20;

/** Opens `file` as vmdk and reads it all. */
async function openAndReadAll(file: string): Promise<void> {
  const img = await openImage(file, { format: 'vmdk', readOnly: true });
  try {
    const buf = new Uint8Array(MiB);
    for (let pos = 0; pos < img.size(); pos += buf.length) await img.read(pos, buf.subarray(0, Math.min(buf.length, img.size() - pos)));
  } finally {
    await closeImage(img);
  }
}

/** A qemu-made monolithicSparse image with data in its first grains; returns its bytes. */
async function sparseImage(dir: string, name = 'h.vmdk', options = 'subformat=monolithicSparse'): Promise<{ file: string; bytes: Buffer }> {
  const file = path.join(dir, name);
  if (options.includes('streamOptimized')) {
    const raw = path.join(dir, 'src.raw');
    await mustRun(qemuImg(['create', '-q', '-f', 'raw', raw, '4M']), 'qemu-img create');
    await mustRun(qemuIo(['-f', 'raw', '-c', 'write -P 0x5a 0 256k', raw]), 'qemu-io');
    await mustRun(qemuImg(['convert', '-O', 'vmdk', '-o', options, raw, file]), 'qemu-img convert');
  } else {
    await mustRun(qemuImg(['create', '-q', '-f', 'vmdk', '-o', options, file, '4M']), 'qemu-img create');
    await mustRun(qemuIo(['-c', 'write -P 0x5a 0 256k', file]), 'qemu-io');
  }
  return { file, bytes: await readFile(file) };
}

const gdSector = (b: Buffer) => Number(b.readBigUInt64LE(56));

interface HostileCase {
  name: string;
  /** Damages a qemu-made sparse image's bytes (or writes other files) and returns the file to open. */
  make(dir: string): Promise<string>;
  pattern: RegExp;
  /** qemu-img check fails on it (and so must tsemu's check). */
  checkFails?: boolean;
}

async function patched(dir: string, patch: (b: Buffer) => Buffer | void, options?: string): Promise<string> {
  const { file, bytes } = await sparseImage(dir, 'h.vmdk', options);
  await writeFile(file, patch(bytes) ?? bytes);
  return file;
}

const descriptor = (extents: string) =>
  `# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\n# Extent description\n${extents}\n`;

async function descriptorFile(dir: string, text: string): Promise<string> {
  await writeFile(path.join(dir, 'data.bin'), Buffer.alloc(MiB));
  const file = path.join(dir, 'd.vmdk');
  await writeFile(file, text);
  return file;
}

const CASES: HostileCase[] = [
  {
    name: 'grain directory entry past the end of the file',
    make: (dir) => patched(dir, (b) => { b.writeUInt32LE(0x7fffffff, gdSector(b) * 512); }),
    pattern: /grain table 0 at sector 2147483647 is past the end/,
  },
  {
    name: 'grain table entry past the end of the file',
    make: (dir) => patched(dir, (b) => { b.writeUInt32LE(0x7ffffff0, b.readUInt32LE(gdSector(b) * 512) * 512); }),
    pattern: /grain 0 at sector 2147483632 is past the end/,
    checkFails: true,
  },
  {
    name: 'grain directory offset past the end',
    make: (dir) => patched(dir, (b) => { b.writeUInt32LE(0x100000, 56); }),
    pattern: /grain directory is past the end/,
  },
  {
    name: 'absurd grain table size',
    make: (dir) => patched(dir, (b) => { b.writeUInt32LE(1000000, 44); }),
    pattern: /1000000 grain table entries/,
  },
  {
    name: 'grain size not a power of two',
    make: (dir) => patched(dir, (b) => { b.writeUInt32LE(3, 20); }),
    pattern: /grain size 3/,
  },
  {
    name: 'absurd capacity',
    make: (dir) => patched(dir, (b) => { b.writeUInt32LE(0x7fffffff, 16); }),
    pattern: /out of range/,
  },
  {
    name: 'truncated file',
    make: (dir) => patched(dir, (b) => b.subarray(0, 1000)),
    pattern: /past the end of the file|truncated/,
  },
  {
    name: 'descriptor extent of absurd size',
    make: (dir) => descriptorFile(dir, descriptor('RW 99999999999999999999 FLAT "data.bin" 0')),
    pattern: /out of range/,
  },
  {
    name: 'descriptor with too many extents',
    make: (dir) => descriptorFile(dir, descriptor('RW 1 FLAT "data.bin" 0\n'.repeat(5000))),
    pattern: /more than 4096 extents/,
  },
  {
    name: 'descriptor with an unsupported extent type',
    make: (dir) => descriptorFile(dir, descriptor('RW 100 VMFSRDM "data.bin"')),
    pattern: /VMFSRDM is not supported/,
  },
  {
    name: 'descriptor naming a missing extent file',
    make: (dir) => descriptorFile(dir, descriptor('RW 100 FLAT "missing.bin" 0')),
    pattern: /Could not open .*missing\.bin/,
  },
  {
    name: 'descriptor whose sparse extent is not sparse',
    make: (dir) => descriptorFile(dir, descriptor('RW 2048 SPARSE "data.bin"')),
    pattern: /not a VMDK sparse extent/,
  },
  {
    name: 'descriptor with a garbage line',
    make: (dir) => descriptorFile(dir, descriptor('RW 100 FLAT "data.bin" 0\n\u0001\u0002 nonsense "')),
    pattern: /cannot parse line/,
  },
  {
    name: 'descriptor naming a FIFO as an extent (would block forever)',
    make: async (dir) => {
      execFileSync('mkfifo', [path.join(dir, 'fifo')]);
      return descriptorFile(dir, descriptor('RW 100 FLAT "fifo" 0'));
    },
    pattern: /must be a regular file or a block device/,
  },
  {
    name: 'image that names itself as its parent',
    make: (dir) => descriptorFile(dir, descriptor('RW 2048 FLAT "data.bin" 0').replace('createType', 'parentFileNameHint="d.vmdk"\ncreateType')),
    pattern: /loops back/,
  },
  {
    name: 'stream image without its footer',
    make: async (dir) => {
      const file = path.join(dir, 's.vmdk');
      await mustRun(qemuImg(['create', '-q', '-f', 'raw', path.join(dir, 'r.raw'), '1M']), 'qemu-img create');
      await convertImage({ sources: [path.join(dir, 'r.raw')], target: file, outputFormat: 'vmdk', options: ['subformat=streamOptimized'] });
      const b = await readFile(file);
      await writeFile(file, b.subarray(0, b.length - 1536));
      return file;
    },
    pattern: /no footer/,
  },
  {
    name: 'stream grain with an absurd length',
    make: (dir) => patched(dir, (b) => { b.writeUInt32LE(0x7fffffff, 128 * 512 + 8); }, 'subformat=streamOptimized'),
    pattern: /invalid length 2147483647/,
  },
  {
    name: 'stream grain with corrupt deflate data',
    make: (dir) => patched(dir, (b) => { b.fill(0x77, 128 * 512 + 12, 128 * 512 + 200); }, 'subformat=streamOptimized'),
    pattern: /compressed grain 0 is corrupt/,
  },
];

for (const c of CASES) {
  test(`vmdk hostile: ${c.name} is a clear error and the file is unchanged`, async () => {
    const { dir, cleanup } = await scratchDir();
    try {
      const file = await c.make(dir);
      const before = await sha256File(file);
      await assert.rejects(openAndReadAll(file), c.pattern);
      assert.equal(await sha256File(file), before);
      if (c.checkFails) {
        const q = await qemuImg(['check', file]);
        assert.equal(q.code, 1);
        assert.match(q.stderr, /Check failed: Invalid argument/);
        const f = await FileNode.open(file, { readOnly: true });
        try {
          await assert.rejects(checkVmdk(f, { log: () => {} }), /Invalid argument/);
        } finally {
          await f.close();
        }
      }
    } finally {
      await cleanup();
    }
  });
}

test('vmdk hostile: names that would inject descriptor lines are refused at create', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    for (const options of [['toolsversion=1"\nRW 1 FLAT "/etc/passwd" 0'], ['hwversion=4"\nparentFileNameHint="x']]) {
      await assert.rejects(
        createImage({ filename: path.join(dir, 'x.vmdk'), format: 'vmdk', size: '1M', options: options.map((o) => o.replace(/,/g, ',,')) }),
        /cannot be written into a VMDK descriptor/,
      );
    }
  } finally {
    await cleanup();
  }
});
