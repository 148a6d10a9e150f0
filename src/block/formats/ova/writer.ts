/**
 * Writing an OVA: an OVF 1.0 descriptor, a manifest and one streamOptimized VMDK
 * in a ustar archive, in the order the OVF specification asks (descriptor
 * first, then the manifest, then the files in References order), as VirtualBox
 * and ESXi import it.
 *
 * The disk is made first as a streamOptimized VMDK in a file of its own (by
 * `img create` here, by convert's usual VMDK path for `-O ova`), because the
 * descriptor names the disk's size and the manifest its SHA-256, and both come
 * before the disk in the archive. packOva() hashes the disk file, then streams
 * the archive through tar-stream's pack() into a work file (convert passes a
 * hidden work name in the target's folder): descriptor, manifest (SHA256(name)=
 * digest lines, OVF 2.0 style, which current VirtualBox and ESXi check), the
 * disk streamed from its file, the end-of-archive blocks. The work file is
 * flushed and renamed to the target only when all of it is written; a failure
 * removes it, so no complete-looking .ova is left behind.
 *
 * Options (`-o`): adapter_type (lsilogic by default, the controller the OVF lists),
 * hwversion (the VMDK's and the OVF's vmx-NN, 7 by default), toolsversion and
 * uuid go to the VMDK; manifest=off leaves the .mf out.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pack } from 'tar-stream';
import { parseBool } from '../../options.js';
import type { CreateRequest } from '../format.js';
import { createVmdk } from '../vmdk/create.js';
import { OVA_CREATE_OPTIONS } from './create-options.js';
import { buildOvf } from './ovf.js';

export interface OvaSettings {
  /** `-o` options of the VMDK disk (subformat=streamOptimized included). */
  vmdkOptions: Map<string, string>;
  adapterType: string;
  hwVersion: number;
  manifest: boolean;
}

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
  const ovf = Buffer.from(buildOvf({
    name: stem, diskFile: names.disk, diskFileSize: diskSize, capacity, adapterType: s.adapterType, hwVersion: s.hwVersion,
  }));
  const manifest = s.manifest
    ? Buffer.from(`SHA256(${names.ovf})= ${createHash('sha256').update(ovf).digest('hex')}\nSHA256(${names.disk})= ${await fileSha256(vmdkPath)}\n`)
    : undefined;

  const archive = pack();
  const members = async () => {
    archive.entry({ name: names.ovf }, ovf);
    if (manifest) archive.entry({ name: names.mf }, manifest);
    await pipeline(createReadStream(vmdkPath), archive.entry({ name: names.disk, size: diskSize }));
    archive.finalize();
  };
  try {
    await Promise.all([
      pipeline(archive, createWriteStream(work)),
      members().catch((e: unknown) => {
        archive.destroy(e as Error);
        throw e;
      }),
    ]);
    const out = await open(work, 'r+');
    try {
      await out.sync();
    } finally {
      await out.close();
    }
    if (work !== target) await rename(work, target);
  } catch (e) {
    await rm(work, { force: true });
    throw e;
  }
}

/** The SHA-256 (hex) of the file `name`. */
async function fileSha256(name: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(name), hash);
  return hash.digest('hex');
}
