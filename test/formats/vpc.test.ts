/**
 * VHD (vpc) interop with the real qemu-img, both ways: dynamic and fixed images,
 * with and without force_size, that tsemu creates and writes compare equal in
 * qemu-img (which does not check vpc) and give its info and map JSON; images
 * qemu-img/qemu-io write read the same in tsemu; -o help and option errors are
 * qemu-img's; every new image has its own unique id; hostile footers and tables
 * are clear errors that leave the file unchanged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createImage, createOptionsHelp } from '../../src/block/ops/create.js';
import { closeImage, openImage } from '../../src/block/open.js';
import { mustRun, qemuImg, qemuIo, scratchDir } from '../helpers/peers.js';
import { assertInfoMatches, assertMapMatches, qemuAgrees, tsemuReadsAsQemu, writeScript, qemuHelpWithExtras } from './support.js';
import { assertHostileOpenFails } from './image-checks.js';

const MiB = 1 << 20;
const WRITES = [
  { offset: 0, length: 4096 },
  { offset: 2 * MiB - 512, length: 1024 }, // across a block boundary
  { offset: 3 * MiB + 12345, length: 70000 },
  { offset: 100, length: 10 },
];

/** The same file as qemu-img sees it: fixed images need -f vpc there (they probe as raw). */
async function infoAndMap(file: string, fixed: boolean): Promise<void> {
  if (fixed) {
    const q = JSON.parse((await mustRun(qemuImg(['info', '-f', 'vpc', '--output=json', file]), 'qemu-img info')).stdout);
    const img = await openImage(file, { format: 'vpc', readOnly: true });
    assert.equal(img.size(), q['virtual-size']);
    await closeImage(img);
    return;
  }
  await assertInfoMatches(file);
  await assertMapMatches(file);
}

for (const options of ['subformat=dynamic', 'subformat=dynamic,force_size=on', 'subformat=fixed', 'subformat=fixed,force_size=on']) {
  for (const size of [5 * MiB, 7 * MiB + 512]) {
    test(`vpc ${options} ${size}: tsemu creates and writes, qemu-img reads the same`, async () => {
      const { dir, cleanup } = await scratchDir();
      try {
        const fixed = options.includes('fixed');
        const mine = path.join(dir, 'mine.vhd');
        const theirs = path.join(dir, 'theirs.vhd');
        await createImage({ filename: mine, format: 'vpc', size: String(size), options: [options] });
        await mustRun(qemuImg(['create', '-q', '-f', 'vpc', '-o', options, theirs, String(size)]), 'qemu-img create');
        const mineImg = await openImage(mine, { format: 'vpc', readOnly: true });
        const theirsImg = await openImage(theirs, { format: 'vpc', readOnly: true });
        assert.equal(mineImg.size(), theirsImg.size(), 'same virtual size as qemu-img makes');
        const virtual = mineImg.size();
        await closeImage(mineImg);
        await closeImage(theirsImg);
        await infoAndMap(mine, fixed);
        const expected = await writeScript(mine, virtual, WRITES, 'vpc');
        await qemuAgrees(mine, 'vpc', expected, dir, false);
        await infoAndMap(mine, fixed);
      } finally {
        await cleanup();
      }
    });
  }
}

test('vpc: qemu-img creates, qemu-io writes, tsemu reads the same bytes and info', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    for (const options of ['subformat=dynamic', 'subformat=fixed', 'subformat=dynamic,force_size=on']) {
      const file = path.join(dir, `q-${options.replace(/[=,]/g, '_')}.vhd`);
      await mustRun(qemuImg(['create', '-q', '-f', 'vpc', '-o', options, file, '9M']), 'qemu-img create');
      await mustRun(qemuIo(['-f', 'vpc', '-c', 'write -P 0x5a 1000 300k', '-c', 'write -P 0xa5 5M 1M', '-c', 'write -z 5M 4k', file]), 'qemu-io');
      await tsemuReadsAsQemu(file, 'vpc', dir);
      await infoAndMap(file, options.includes('fixed'));
    }
  } finally {
    await cleanup();
  }
});

test('vpc: -o help, option errors and unique ids', async () => {
  const q = await mustRun(qemuImg(['create', '-f', 'vpc', '-o', 'help']), 'qemu-img -o help');
  assert.equal(createOptionsHelp('vpc'), qemuHelpWithExtras('vpc', q.stdout, ['backing_file', 'backing_fmt', 'uuid']));
  const { dir, cleanup } = await scratchDir();
  try {
    for (const [options, size] of [[['subformat=foo'], '5M'], [[], '3T']] as const) {
      const name = path.join(dir, 'x.vhd');
      const qr = await qemuImg(['create', '-q', '-f', 'vpc', ...options.flatMap((o) => ['-o', o]), name, size]);
      const err = await createImage({ filename: name, format: 'vpc', size, options: [...options] }).then(() => null, (e: Error) => e.message);
      assert.equal(`qemu-img: ${err}\n`, qr.stderr);
    }
    const ids = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const file = path.join(dir, `u${i}.vhd`);
      await createImage({ filename: file, format: 'vpc', size: '1M', options: [] });
      ids.add((await readFile(file)).subarray(68, 84).toString('hex'));
    }
    assert.equal(ids.size, 3);
  } finally {
    await cleanup();
  }
});

const HOSTILE: { name: string; patch: (b: Buffer) => Buffer | void; pattern: RegExp }[] = [
  { name: 'footer checksum mismatch', patch: (b) => { b[40] = (b[40]! ^ 1); }, pattern: /checksum mismatch/ },
  { name: 'not a VHD', patch: (b) => { b.fill(0, 0, 8); b.fill(0, b.length - 512, b.length - 504); }, pattern: /not a VHD/ },
  { name: 'BAT past the end', patch: (b) => { b.writeUInt32BE(0x7fff0000, 512 + 20); }, pattern: /allocation table is past the end/ },
  { name: 'BAT entry past the end', patch: (b) => { b.writeUInt32BE(0x7ffffff0, 1536); }, pattern: /block 0 at sector 2147483632 is past the end/ },
  { name: 'truncated file', patch: (b) => b.subarray(0, 1000), pattern: /past the end|not a VHD/ },
];

for (const h of HOSTILE) {
  test(`vpc hostile: ${h.name} is a clear error and the file is unchanged`, async () => {
    const { dir, cleanup } = await scratchDir();
    try {
      const file = path.join(dir, 'h.vhd');
      await mustRun(qemuImg(['create', '-q', '-f', 'vpc', file, '4M']), 'qemu-img create');
      await mustRun(qemuIo(['-f', 'vpc', '-c', 'write -P 1 0 4k', file]), 'qemu-io');
      const bytes = await readFile(file);
      await writeFile(file, h.patch(bytes) ?? bytes);
      await assertHostileOpenFails(file, 'vpc', h.pattern);
    } finally {
      await cleanup();
    }
  });
}
