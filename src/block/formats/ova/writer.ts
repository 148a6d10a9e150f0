/**
 * Writing an OVA: an OVF 1.0 descriptor, a manifest and one streamOptimized VMDK
 * in a ustar archive, in the order the OVF specification asks (descriptor
 * first, then the manifest, then the files in References order), as VirtualBox
 * and ESXi import it.
 *
 * The disk is made first as a streamOptimized VMDK in a file of its own (by
 * `img create` here, by convert's usual VMDK path for `-O ova`), because the
 * descriptor names the disk's size and the manifest its SHA-256, and both come
 * before the disk in the archive. packOva() then writes the archive (convert
 * passes a hidden work name in the target's folder): descriptor, manifest
 * (SHA256(name)= digest lines, OVF 2.0 style, which current VirtualBox and ESXi
 * check), the disk copied in one pass while it is hashed (the manifest's place
 * is known in advance since digests have a fixed length), the end-of-archive
 * blocks; and renames it to the target only when all of it is written and
 * flushed. A failure removes the work file, so no complete-looking .ova is left
 * behind.
 *
 * Options (`-o`): adapter_type (lsilogic by default, the controller the OVF lists),
 * hwversion (the VMDK's and the OVF's vmx-NN, 7 by default), toolsversion and
 * uuid go to the VMDK; manifest=off leaves the .mf out.
 */
import { createHash } from 'node:crypto';
import { type FileHandle, open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { parseBool } from '../../options.js';
import type { CreateOptionSpec, CreateRequest } from '../format.js';
import { DISK_UUID_OPTION } from '../disk-uuid.js';
import { createVmdk, VMDK_CREATE_OPTIONS } from '../vmdk/create.js';
import { buildOvf } from './ovf.js';
import { TAR_BLOCK, tarHeader, tarPadding } from './tar.js';

const vmdkOption = (name: string): CreateOptionSpec => VMDK_CREATE_OPTIONS.find((o) => o.name === name)!;

export const OVA_CREATE_OPTIONS: readonly CreateOptionSpec[] = [
  { name: 'size', type: 'size', help: 'Virtual disk size' },
  { ...vmdkOption('adapter_type'), help: 'Disk controller and VMDK adapter type: lsilogic (default), buslogic, ide or legacyESX' },
  { name: 'hwversion', type: 'str', help: "VMware virtual hardware version (the OVF's vmx-NN and the VMDK's; default 7)" },
  vmdkOption('toolsversion'),
  DISK_UUID_OPTION,
  { name: 'manifest', type: 'bool', help: 'Add a manifest (.mf) with SHA-256 digests of the files', default: 'on' },
];

export interface OvaSettings {
  /** `-o` options of the VMDK disk (subformat=streamOptimized included). */
  vmdkOptions: Map<string, string>;
  adapterType: string;
  hwVersion: number;
  manifest: boolean;
}

const COPY_CHUNK = 1 << 20;
const DEFAULT_HW_VERSION = 7;

/** The OVA's options checked, and those its VMDK gets. */
export function ovaSettings(options: Map<string, string>): OvaSettings {
  for (const key of options.keys()) {
    if (!OVA_CREATE_OPTIONS.some((o) => o.name === key)) throw new Error(`Invalid parameter '${key}'`);
  }
  const adapterType = options.get('adapter_type') ?? 'lsilogic';
  const hw = options.get('hwversion') ?? String(DEFAULT_HW_VERSION);
  if (!/^[0-9]{1,2}$/.test(hw) || Number(hw) < 4) throw new Error(`Parameter 'hwversion' expects a VMware hardware version (4 to 99), not '${hw}'`);
  const vmdkOptions = new Map([['subformat', 'streamOptimized'], ['adapter_type', adapterType], ['hwversion', hw]]);
  for (const key of ['toolsversion', 'uuid']) {
    const value = options.get(key);
    if (value !== undefined) vmdkOptions.set(key, value);
  }
  return { vmdkOptions, adapterType, hwVersion: Number(hw), manifest: parseBool(options.get('manifest') ?? 'on', 'manifest') };
}

/** `options` as one `-o` argument (commas doubled). */
export function optionString(options: Map<string, string>): string {
  return [...options].map(([k, v]) => `${k}=${v.replace(/,/g, ',,')}`).join(',');
}

/** `img create -f ova`: an appliance with one empty disk of `req.size` bytes. */
export async function createOva(req: CreateRequest): Promise<void> {
  const settings = ovaSettings(req.options);
  const disk = path.join(path.dirname(req.filename), `.${path.basename(req.filename)}.tsemu-disk-${process.pid}.vmdk`);
  try {
    await createVmdk({ filename: disk, size: req.size, options: settings.vmdkOptions });
    await packOva(req.filename, req.filename, disk, req.size, settings);
  } finally {
    await rm(disk, { force: true });
  }
}

/** Member names after the target's name, kept to characters every importer takes. */
function memberStem(target: string): string {
  const stem = path.basename(target).replace(/\.ova$/i, '').replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 80);
  return stem === '' || stem.startsWith('.') ? `appliance${stem}` : stem;
}

/**
 * Writes the OVA `target`, holding the streamOptimized VMDK `vmdkPath` of `capacity`
 * bytes, as `work` and renames it to `target` when it is complete; a failure removes `work`.
 */
export async function packOva(target: string, work: string, vmdkPath: string, capacity: number, s: OvaSettings): Promise<void> {
  const stem = memberStem(target);
  const names = { ovf: `${stem}.ovf`, mf: `${stem}.mf`, disk: `${stem}-disk1.vmdk` };
  const diskSize = (await stat(vmdkPath)).size;
  const ovf = new TextEncoder().encode(buildOvf({
    name: stem, diskFile: names.disk, diskFileSize: diskSize, capacity, adapterType: s.adapterType, hwVersion: s.hwVersion,
  }));
  const ovfDigest = createHash('sha256').update(ovf).digest('hex');
  const mfLine = (name: string, digest: string) => `SHA256(${name})= ${digest}\n`;
  // Both digests have the same length, so the manifest's size is known before the disk is hashed.
  const mfSize = s.manifest ? new TextEncoder().encode(mfLine(names.ovf, ovfDigest) + mfLine(names.disk, ovfDigest)).length : 0;
  const mtime = Math.floor(Date.now() / 1000);
  const member = (size: number) => TAR_BLOCK + size + tarPadding(size);
  const mfAt = member(ovf.length);
  const diskAt = mfAt + (s.manifest ? member(mfSize) : 0);
  const end = diskAt + member(diskSize);

  const out = await open(work, 'w');
  try {
    await out.write(tarHeader(names.ovf, ovf.length, mtime), 0, TAR_BLOCK, 0);
    await out.write(ovf, 0, ovf.length, TAR_BLOCK);
    await out.write(tarHeader(names.disk, diskSize, mtime), 0, TAR_BLOCK, diskAt);
    const diskDigest = await copyHashed(vmdkPath, out, diskAt + TAR_BLOCK, diskSize);
    if (s.manifest) {
      const mf = new TextEncoder().encode(mfLine(names.ovf, ovfDigest) + mfLine(names.disk, diskDigest));
      await out.write(tarHeader(names.mf, mf.length, mtime), 0, TAR_BLOCK, mfAt);
      await out.write(mf, 0, mf.length, mfAt + TAR_BLOCK);
    }
    // Padding of the last member and the two zero blocks that end the archive.
    await out.truncate(end + 2 * TAR_BLOCK);
    await out.sync();
    await out.close();
    if (work !== target) await rename(work, target);
  } catch (e) {
    await out.close().catch(() => {});
    await rm(work, { force: true });
    throw e;
  }
}

/** Copies `size` bytes of `source` to `out` at `at`; returns their SHA-256 (hex). */
async function copyHashed(source: string, out: FileHandle, at: number, size: number): Promise<string> {
  const hash = createHash('sha256');
  const input = await open(source, 'r');
  try {
    const buf = new Uint8Array(COPY_CHUNK);
    for (let done = 0; done < size;) {
      const { bytesRead } = await input.read(buf, 0, Math.min(COPY_CHUNK, size - done), done);
      if (bytesRead === 0) throw new Error(`${source}: ended after ${done} of ${size} bytes`);
      const part = buf.subarray(0, bytesRead);
      hash.update(part);
      await out.write(part, 0, bytesRead, at + done);
      done += bytesRead;
    }
  } finally {
    await input.close();
  }
  return hash.digest('hex');
}
