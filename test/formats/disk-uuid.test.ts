/**
 * The disk UUID option (`-o uuid=`) of vdi, vmdk and vpc: every created image gets
 * its own random UUID, `-o uuid=X` writes X where the format keeps it (VDI header
 * at 0x188 in VirtualBox's byte order, VHD footer unique id at 68, VMDK
 * ddb.uuid.image) and the opened image reports it; convert gives the target a new
 * UUID unless `-o uuid=keep` copies the source's; qemu-img still accepts the images;
 * bad UUID text and a source without a UUID are clear errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createImage } from '../../src/block/ops/create.js';
import { convertImage } from '../../src/block/ops/convert.js';
import { closeImage, openImage } from '../../src/block/open.js';
import { mustRun, qemuImg, scratchDir, tsemu } from '../helpers/peers.js';

const GIVEN = '0123abcd-4567-89ef-8123-456789abcdef';
const FORMATS = ['vdi', 'vmdk', 'vpc'] as const;

async function diskUuidOf(file: string, format?: string): Promise<string | undefined> {
  const img = await openImage(file, { format, readOnly: true });
  try {
    return img.diskUuid;
  } finally {
    await closeImage(img);
  }
}

/** The UUID as the format's bytes on disk hold it, read without tsemu's parser. */
async function uuidOnDisk(file: string, format: (typeof FORMATS)[number]): Promise<string> {
  const bytes = await readFile(file);
  if (format === 'vmdk') {
    const m = /ddb\.uuid\.image = "([^"]*)"/.exec(bytes.subarray(512, 512 * 21).toString('latin1'));
    assert.ok(m, 'descriptor has ddb.uuid.image');
    return m[1]!;
  }
  const at = format === 'vdi' ? 0x188 : 68;
  const raw = Buffer.from(bytes.subarray(at, at + 16));
  if (format === 'vdi') {
    raw.subarray(0, 4).reverse();
    raw.subarray(4, 6).reverse();
    raw.subarray(6, 8).reverse();
  }
  const hex = raw.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

for (const format of FORMATS) {
  test(`${format}: new images get different UUIDs, -o uuid= sets one, convert renews or keeps it`, async () => {
    const { dir, cleanup } = await scratchDir();
    try {
      const a = path.join(dir, `a.${format}`);
      const b = path.join(dir, `b.${format}`);
      await createImage({ filename: a, format, size: '4M', options: [] });
      await createImage({ filename: b, format, size: '4M', options: [] });
      const ua = await diskUuidOf(a);
      assert.match(ua ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'a random version 4 UUID');
      assert.notEqual(ua, await diskUuidOf(b));
      assert.equal(await uuidOnDisk(a, format), ua);

      const given = path.join(dir, `given.${format}`);
      await createImage({ filename: given, format, size: '4M', options: [`uuid=${GIVEN.toUpperCase()}`] });
      assert.equal(await uuidOnDisk(given, format), GIVEN);
      assert.equal(await diskUuidOf(given), GIVEN);
      if (format !== 'vpc') await mustRun(qemuImg(['check', '-f', format, given]), `qemu-img check ${given}`);
      await mustRun(qemuImg(['info', '-f', format, given]), `qemu-img info ${given}`);

      const renewed = path.join(dir, `renewed.${format}`);
      await convertImage({ sources: [given], target: renewed, outputFormat: format });
      const ur = await diskUuidOf(renewed);
      assert.ok(ur !== undefined && ur !== GIVEN, 'convert gives a new UUID by default');

      const kept = path.join(dir, `kept.${format}`);
      await convertImage({ sources: [given], target: kept, outputFormat: format, options: ['uuid=keep'] });
      assert.equal(await diskUuidOf(kept), GIVEN);
      assert.equal(await uuidOnDisk(kept, format), GIVEN);
    } finally {
      await cleanup();
    }
  });
}

test('uuid=keep carries a UUID across formats (vdi to vpc to vmdk)', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const vdi = path.join(dir, 's.vdi');
    const vpc = path.join(dir, 's.vhd');
    const vmdk = path.join(dir, 's.vmdk');
    await createImage({ filename: vdi, format: 'vdi', size: '2M', options: [] });
    const uuid = await diskUuidOf(vdi);
    await convertImage({ sources: [vdi], target: vpc, outputFormat: 'vpc', options: ['uuid=keep'] });
    await convertImage({ sources: [vpc], target: vmdk, outputFormat: 'vmdk', options: ['subformat=streamOptimized,uuid=keep'] });
    assert.equal(await diskUuidOf(vpc), uuid);
    assert.equal(await diskUuidOf(vmdk), uuid);
  } finally {
    await cleanup();
  }
});

test('bad UUIDs and sources without one are clear errors that leave no target', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const raw = path.join(dir, 's.raw');
    await createImage({ filename: raw, format: 'raw', size: '1M', options: [] });
    const target = path.join(dir, 't.vdi');
    await assert.rejects(
      convertImage({ sources: [raw], target, outputFormat: 'vdi', options: ['uuid=keep'] }),
      /'keep' needs a source with a disk UUID.*s\.raw' \(raw\) has none/,
    );
    await assert.rejects(readFile(target), /ENOENT/);
    await assert.rejects(
      convertImage({ sources: [raw, raw], target, outputFormat: 'vdi', options: ['uuid=keep'] }),
      /'keep' needs exactly one source image/,
    );
    await assert.rejects(
      createImage({ filename: target, format: 'vpc', size: '1M', options: ['uuid=keep'] }),
      /'keep' needs a source image/,
    );
    await assert.rejects(
      createImage({ filename: target, format: 'qcow2', size: '1M', options: [`uuid=${GIVEN}`] }),
      /Invalid parameter 'uuid'/,
    );
    // Through the CLI: the message names the bad value and the exit code is 1.
    const r = await tsemu(['img', 'create', '-f', 'vdi', '-o', 'uuid=0123-not-a-uuid', target, '1M']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Parameter 'uuid' expects a UUID like .*, not '0123-not-a-uuid'/);
    await assert.rejects(readFile(target), /ENOENT/);
  } finally {
    await cleanup();
  }
});
