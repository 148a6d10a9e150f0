/**
 * OVA appliances: `img convert -O ova` writes a tar whose members are the OVF
 * descriptor (first), the SHA-256 manifest and a streamOptimized VMDK that
 * qemu-img checks and finds equal to the source; `img info` and `img convert`
 * read the disk inside it again. An OVA made by hand with tar holding two disks
 * of different formats opens disk 2 as `NAME.ova#2`. Hostile OVAs (no .ovf, an
 * href to a member that is not there, bad XML, a member past the end of the
 * file, a disk number the OVF does not have) are clear errors, and a failed
 * `-O ova` convert leaves no file behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { convertImage } from '../../src/block/ops/convert.js';
import { collectImageInfo } from '../../src/block/ops/info.js';
import { closeImage, openImage } from '../../src/block/open.js';
import { mustRun, qemuImg, qemuIo, runProgram, scratchDir, tsemu } from '../helpers/peers.js';
import { readImageWithTsemu } from '../helpers/images.js';

const tar = (args: string[], cwd: string) => mustRun(runProgram('tar', args, { cwd }), `tar ${args.join(' ')}`);

/** A qcow2 source with a few patterned runs (qemu-io). */
async function patternedSource(dir: string, name: string, size: string, fill: number): Promise<string> {
  const file = path.join(dir, name);
  await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', file, size]), 'qemu-img create');
  await mustRun(qemuIo(['-c', `write -P ${fill} 0 64k`, '-c', `write -P ${fill + 1} 1M 300k`, file]), 'qemu-io write');
  return file;
}

test('convert -O ova writes descriptor, manifest and a streamOptimized VMDK; info and convert read it back', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const src = await patternedSource(dir, 'src.qcow2', '6M', 0x31);
    const ova = path.join(dir, 'My Appliance.ova');
    const r = await tsemu(['img', 'convert', '-c', '-O', 'ova', '-o', 'uuid=0123abcd-4567-89ef-8123-456789abcdef', src, ova]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((await readdir(dir)).sort(), ['My Appliance.ova', 'src.qcow2'], 'no partial files left');

    const listing = (await tar(['tf', ova], dir)).stdout.trim().split('\n');
    assert.deepEqual(listing, ['My_Appliance.ovf', 'My_Appliance.mf', 'My_Appliance-disk1.vmdk']);
    await tar(['xf', ova], dir);
    const sha = async (name: string) => createHash('sha256').update(await readFile(path.join(dir, name))).digest('hex');
    assert.equal(
      await readFile(path.join(dir, 'My_Appliance.mf'), 'utf8'),
      `SHA256(My_Appliance.ovf)= ${await sha('My_Appliance.ovf')}\nSHA256(My_Appliance-disk1.vmdk)= ${await sha('My_Appliance-disk1.vmdk')}\n`,
    );
    const ovf = await readFile(path.join(dir, 'My_Appliance.ovf'), 'utf8');
    for (const needle of [
      'xmlns="http://schemas.dmtf.org/ovf/envelope/1"',
      'ovf:href="My_Appliance-disk1.vmdk"',
      'ovf:capacity="6291456"',
      'ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"',
      '<NetworkSection>', '<OperatingSystemSection', '<rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>',
      '<rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>',
    ]) assert.ok(ovf.includes(needle), `the OVF has ${needle}`);
    const disk = path.join(dir, 'My_Appliance-disk1.vmdk');
    await mustRun(qemuImg(['check', disk]), 'qemu-img check of the disk');
    await mustRun(qemuImg(['compare', src, disk]), 'qemu-img compare of the disk');
    const descriptor = (await readFile(disk)).subarray(512, 512 * 21).toString('latin1');
    assert.match(descriptor, /createType="streamOptimized"/);
    assert.match(descriptor, /ddb\.adapterType = "lsilogic"/);
    assert.match(descriptor, /ddb\.uuid\.image = "0123abcd-4567-89ef-8123-456789abcdef"/);

    const [info] = await collectImageInfo(ova);
    assert.equal(info!.format, 'vmdk');
    assert.equal(info!['virtual-size'], 6 * 1024 * 1024);
    const human = await tsemu(['img', 'info', ova]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /file format: vmdk\nvirtual size: 6 MiB/);
    const back = path.join(dir, 'back.qcow2');
    const c = await tsemu(['img', 'convert', '-O', 'qcow2', ova, back]);
    assert.equal(c.code, 0, c.stderr);
    await mustRun(qemuImg(['compare', src, back]), 'qemu-img compare of the round trip');
    const img = await openImage(ova, { readOnly: true });
    assert.equal(img.diskUuid, '0123abcd-4567-89ef-8123-456789abcdef');
    await closeImage(img);
    await assert.rejects(openImage(ova), /disks inside an OVA are read-only/);
  } finally {
    await cleanup();
  }
});

/** An OVF for hand-made OVAs: disks (diskId, fileRef) and files (id, href). */
function handOvf(files: [string, string][], disks: [string, string, number][]): string {
  return `<?xml version="1.0"?>
<!-- made by hand -->
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References>
${files.map(([id, href]) => `    <File ovf:id="${id}" ovf:href="${href}"/>`).join('\n')}
  </References>
  <DiskSection>
    <Info>Disks &amp; more</Info>
${disks.map(([id, ref, cap]) => `    <ovf:Disk ovf:diskId="${id}" ovf:fileRef="${ref}" ovf:capacity="${cap}" ovf:capacityAllocationUnits="byte * 2^20"/>`).join('\n')}
  </DiskSection>
  <VirtualSystem ovf:id="hand"><Info>x</Info></VirtualSystem>
</Envelope>
`;
}

test('an OVA made with tar: two disks of different formats, NAME.ova#2 selects the second', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const a = await patternedSource(dir, 'a.qcow2', '4M', 0x41);
    const b = await patternedSource(dir, 'b-src.qcow2', '3M', 0x61);
    await mustRun(qemuImg(['convert', '-O', 'vmdk', '-o', 'subformat=streamOptimized', a, path.join(dir, 'one.vmdk')]), 'qemu-img convert');
    await mustRun(qemuImg(['convert', '-O', 'vdi', b, path.join(dir, 'two.vdi')]), 'qemu-img convert');
    // References list the files in another order than the disks.
    await writeFile(path.join(dir, 'hand.ovf'), handOvf([['f2', 'two.vdi'], ['f1', 'one.vmdk']], [['d1', 'f1', 4], ['d2', 'f2', 3]]));
    await tar(['--format=ustar', '-cf', 'hand.ova', 'hand.ovf', 'one.vmdk', 'two.vdi'], dir);
    const ova = path.join(dir, 'hand.ova');

    const [first] = await collectImageInfo(ova);
    assert.equal(first!.format, 'vmdk');
    const [second] = await collectImageInfo(`${ova}#2`);
    assert.equal(second!.format, 'vdi');
    assert.equal(second!['virtual-size'], 3 * 1024 * 1024);
    const out = path.join(dir, 'second.raw');
    const r = await tsemu(['img', 'convert', '-O', 'raw', `${ova}#2`, out]);
    assert.equal(r.code, 0, r.stderr);
    await mustRun(qemuImg(['compare', b, out]), 'qemu-img compare of disk 2');
    assert.deepEqual(await readImageWithTsemu(`${ova}#1`), await readImageWithTsemu(a));

    const missing = await tsemu(['img', 'info', `${ova}#3`]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /the OVA has 2 disk\(s\), there is no disk 3/);
  } finally {
    await cleanup();
  }
});

const HOSTILE: { name: string; make: (dir: string) => Promise<void>; pattern: RegExp }[] = [
  {
    name: 'no .ovf descriptor',
    make: async (dir) => { await tar(['--format=ustar', '-cf', 'x.ova', 'one.vmdk'], dir); },
    pattern: /no OVF descriptor \(\.ovf\) in the OVA/,
  },
  {
    name: 'an href to a member the OVA does not hold',
    make: async (dir) => {
      await writeFile(path.join(dir, 'x.ovf'), handOvf([['f1', 'gone.vmdk']], [['d1', 'f1', 4]]));
      await tar(['--format=ustar', '-cf', 'x.ova', 'x.ovf', 'one.vmdk'], dir);
    },
    pattern: /OVF disk 1 \('d1'\) refers to 'gone\.vmdk', which the OVA does not hold/,
  },
  {
    name: 'a disk whose fileRef References does not list',
    make: async (dir) => {
      await writeFile(path.join(dir, 'x.ovf'), handOvf([['f1', 'one.vmdk']], [['d1', 'f9', 4]]));
      await tar(['--format=ustar', '-cf', 'x.ova', 'x.ovf', 'one.vmdk'], dir);
    },
    pattern: /OVF disk 'd1' refers to file 'f9', which References does not list/,
  },
  {
    name: 'bad XML',
    make: async (dir) => {
      await writeFile(path.join(dir, 'x.ovf'), '<Envelope>\n<References>\n</Envelope>\n');
      await tar(['--format=ustar', '-cf', 'x.ova', 'x.ovf', 'one.vmdk'], dir);
    },
    pattern: /the OVF descriptor is not well-formed XML: <\/Envelope> closes <References> \(line 3\)/,
  },
  {
    name: 'a DOCTYPE (entity definitions)',
    make: async (dir) => {
      await writeFile(path.join(dir, 'x.ovf'), '<!DOCTYPE x [<!ENTITY a "aaaa">]>\n<Envelope/>\n');
      await tar(['--format=ustar', '-cf', 'x.ova', 'x.ovf', 'one.vmdk'], dir);
    },
    pattern: /DOCTYPE declarations are not accepted/,
  },
  {
    name: 'a member past the end of the file',
    make: async (dir) => {
      await writeFile(path.join(dir, 'x.ovf'), handOvf([['f1', 'one.vmdk']], [['d1', 'f1', 4]]));
      await tar(['--format=ustar', '-cf', 'x.ova', 'x.ovf', 'one.vmdk'], dir);
      await truncate(path.join(dir, 'x.ova'), 4096);
    },
    pattern: /member 'one\.vmdk' \(\d+ bytes at byte \d+\) runs past the end of the file \(4096 bytes\)/,
  },
  {
    name: 'a damaged tar header',
    make: async (dir) => {
      await writeFile(path.join(dir, 'x.ovf'), handOvf([['f1', 'one.vmdk']], [['d1', 'f1', 4]]));
      await tar(['--format=ustar', '-cf', 'x.ova', 'x.ovf', 'one.vmdk'], dir);
      const bytes = await readFile(path.join(dir, 'x.ova'));
      bytes[1024 + 124] = 0x39; // the second header's size field: '9' is not octal
      await writeFile(path.join(dir, 'x.ova'), bytes);
    },
    pattern: /bad header checksum at byte 1024/,
  },
];

for (const h of HOSTILE) {
  test(`hostile OVA: ${h.name} is a clear error`, async () => {
    const { dir, cleanup } = await scratchDir();
    try {
      await mustRun(qemuImg(['create', '-q', '-f', 'vmdk', '-o', 'subformat=streamOptimized', path.join(dir, 'one.vmdk'), '4M']), 'qemu-img create');
      await h.make(dir);
      const ova = path.join(dir, 'x.ova');
      await assert.rejects(collectImageInfo(ova), h.pattern);
      const r = await tsemu(['img', 'convert', '-O', 'raw', ova, path.join(dir, 'out.raw')]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, h.pattern);
      assert.ok(!(await readdir(dir)).includes('out.raw'));
    } finally {
      await cleanup();
    }
  });
}

test('a failed convert -O ova leaves no file behind', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const src = await patternedSource(dir, 'src.qcow2', '2M', 1);
    const target = path.join(dir, 'bad.ova');
    await assert.rejects(convertImage({ sources: [src], target, outputFormat: 'ova', options: ['adapter_type=scsi9'] }), /invalid parameter value: scsi9/);
    await assert.rejects(convertImage({ sources: [src], target, outputFormat: 'ova', options: ['manifest=maybe'] }), /'manifest' expects 'on' or 'off'/);
    await assert.rejects(convertImage({ sources: [src], target, outputFormat: 'ova', options: ['cluster_size=64k'] }), /Invalid parameter 'cluster_size'/);
    assert.deepEqual(await readdir(dir), ['src.qcow2']);
    await convertImage({ sources: [src], target, outputFormat: 'ova', options: ['manifest=off,adapter_type=ide'] });
    const listing = (await tar(['tf', target], dir)).stdout.trim().split('\n');
    assert.deepEqual(listing, ['bad.ovf', 'bad-disk1.vmdk']);
  } finally {
    await cleanup();
  }
});

test('-f ova on a file that is not a tar archive is a clear error', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'plain.ova');
    await writeFile(file, new Uint8Array(4096).fill(7));
    await assert.rejects(collectImageInfo(file, { format: 'ova' }), /plain\.ova is not a tar archive \(an OVA is one\)/);
    const [info] = await collectImageInfo(file);
    assert.equal(info!.format, 'raw', 'without -f it probes as raw, as qemu-img would');
  } finally {
    await cleanup();
  }
});
