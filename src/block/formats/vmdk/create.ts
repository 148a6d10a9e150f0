/**
 * Creating VMDK images with qemu-img 7.2's options and layouts:
 *
 * - monolithicSparse: one hosted sparse extent with the descriptor embedded after
 *   its header (sectors 1-20), then the redundant grain directory and its tables,
 *   the grain directory and its tables, all tables preallocated and zeroed, the
 *   metadata rounded up to a whole grain (64 KiB grains, 512-entry tables);
 * - streamOptimized: the same header (version 3, compressed grains with markers,
 *   deflate) saying "directory at the end", the embedded descriptor, and after the
 *   overhead an empty directory, the footer and the end-of-stream marker (stream.ts);
 * - monolithicFlat: a descriptor file and NAME-flat.vmdk of the full size (sparse);
 * - twoGbMaxExtentSparse / twoGbMaxExtentFlat: a descriptor file and extents of at
 *   most 2 GiB, NAME-s001.vmdk … (sparse, no embedded descriptor) or NAME-f001.vmdk ….
 *
 * The descriptor carries a random CID, the backing image's CID as parentCID with
 * parentFileNameHint (backing files must be VMDK), the hardware version (4, 6 with
 * compat6, or hwversion), the geometry for the adapter (16 heads for ide, else 255;
 * 63 sectors), the adapter type and tools version, and ddb.uuid.image: a new
 * random one unless `-o uuid=` names it (disk-uuid.ts), so every new disk is
 * unique to VirtualBox's media registry.
 * streamOptimized descriptors also name ddb.toolsInstallType, which importers such
 * as ESXi and cloud image services look for.
 */
import { randomInt } from 'node:crypto';
import path from 'node:path';
import { parseBool } from '../../options.js';
import { closeImage, openImage, resolveBackingPath } from '../../open.js';
import { openProtocol } from '../../protocols/index.js';
import type { CreateRequest } from '../format.js';
import { diskUuidFromOptions } from '../disk-uuid.js';
import { VMDK_CREATE_OPTIONS } from './create-options.js';
import { buildDescriptor, checkDescriptorName, type ExtentLine, NO_PARENT_CID } from './descriptor.js';
import { VmdkNode } from './node.js';
import {
  COMPRESSION_DEFLATE,
  FLAG_COMPRESSED,
  FLAG_MARKERS,
  FLAG_NL_DETECT,
  FLAG_RGD,
  FLAG_ZEROED_GRAIN,
  GD_AT_END,
  SECTOR,
  serializeSparseHeader,
  type SparseHeader,
} from './sparse-header.js';
import { StreamTail } from './stream.js';

const SUBFORMATS = ['monolithicSparse', 'monolithicFlat', 'twoGbMaxExtentSparse', 'twoGbMaxExtentFlat', 'streamOptimized'];
const ADAPTERS = ['ide', 'buslogic', 'lsilogic', 'legacyESX'];
const GRAIN_SECTORS = 128;
const GT_ENTRIES = 512;
const DESCRIPTOR_SECTORS = 20;
const SPLIT_BYTES = 2 * 2 ** 30;
const DEFAULT_TOOLS_VERSION = '2147483647';

interface VmdkSettings {
  subformat: string;
  adapterType: string;
  hwVersion: string;
  toolsVersion: string;
  zeroedGrain: boolean;
  backingFile: string | null;
  uuid: string;
}

export function parseVmdkCreateOptions(options: Map<string, string>): VmdkSettings {
  for (const key of options.keys()) {
    if (!VMDK_CREATE_OPTIONS.some((o) => o.name === key)) throw new Error(`Invalid parameter '${key}'`);
  }
  const subformat = options.get('subformat') ?? 'monolithicSparse';
  if (!SUBFORMATS.includes(subformat)) throw new Error(`invalid parameter value: ${subformat}`);
  const adapterType = options.get('adapter_type') ?? 'ide';
  if (!ADAPTERS.includes(adapterType)) throw new Error(`invalid parameter value: ${adapterType}`);
  const compat6 = parseBool(options.get('compat6') ?? 'off', 'compat6');
  const hw = options.get('hwversion') ?? 'undefined';
  if (compat6 && hw !== 'undefined') throw new Error('compat6 cannot be enabled with hwversion set');
  const hwVersion = compat6 ? '6' : hw === 'undefined' ? '4' : hw;
  const zeroedGrain = parseBool(options.get('zeroed_grain') ?? 'off', 'zeroed_grain');
  const backingFile = options.get('backing_file') ?? null;
  const backingFormat = options.get('backing_fmt');
  const flat = subformat.endsWith('Flat');
  if (backingFormat !== undefined && backingFormat !== 'vmdk') throw new Error("backing_file must be a vmdk image");
  if (flat && backingFile !== null) throw new Error("Flat image can't have backing file");
  if (flat && zeroedGrain) throw new Error("Flat image can't enable zeroed grain");
  const toolsVersion = options.get('toolsversion') ?? DEFAULT_TOOLS_VERSION;
  checkDescriptorName(toolsVersion, 'toolsversion');
  checkDescriptorName(hwVersion, 'hwversion');
  if (backingFile !== null) checkDescriptorName(backingFile, 'backing file name');
  return { subformat, adapterType, hwVersion, toolsVersion, zeroedGrain, backingFile, uuid: diskUuidFromOptions(options) };
}

/** The header and layout of an empty hosted sparse extent of `sectors` sectors. */
function sparseLayout(sectors: number, s: VmdkSettings, stream: boolean): { header: SparseHeader; gdSectors: number; gtSectors: number } {
  const gts = Math.ceil(sectors / (GRAIN_SECTORS * GT_ENTRIES));
  const gdSectors = Math.ceil((gts * 4) / SECTOR);
  const gtSectors = Math.ceil((GT_ENTRIES * 4) / SECTOR);
  const rgdOffset = 1 + DESCRIPTOR_SECTORS;
  const gdOffset = rgdOffset + gdSectors + gts * gtSectors;
  const end = stream ? rgdOffset : gdOffset + gdSectors + gts * gtSectors;
  let flags = FLAG_NL_DETECT | (stream ? FLAG_COMPRESSED | FLAG_MARKERS : FLAG_RGD);
  if (s.zeroedGrain) flags |= FLAG_ZEROED_GRAIN;
  const header: SparseHeader = {
    kind: 'KDMV',
    version: stream ? 3 : s.zeroedGrain ? 2 : 1,
    flags,
    capacity: sectors,
    grainSectors: GRAIN_SECTORS,
    descriptorOffset: 1,
    descriptorSize: DESCRIPTOR_SECTORS,
    gtEntries: GT_ENTRIES,
    rgdOffset: stream ? 0 : rgdOffset,
    gdOffset: stream ? GD_AT_END : gdOffset,
    gdEntries: gts,
    overhead: Math.ceil(end / GRAIN_SECTORS) * GRAIN_SECTORS,
    uncleanShutdown: 0,
    compressAlgorithm: stream ? COMPRESSION_DEFLATE : 0,
  };
  return { header, gdSectors, gtSectors };
}

/** Writes an empty sparse extent file; `descriptor` is embedded when given. */
async function createSparseExtent(filename: string, sectors: number, s: VmdkSettings, stream: boolean, descriptor: string | null): Promise<void> {
  const { header, gdSectors, gtSectors } = sparseLayout(sectors, s, stream);
  const text = descriptor === null ? new Uint8Array(0) : new TextEncoder().encode(descriptor);
  if (text.length > DESCRIPTOR_SECTORS * SECTOR) throw new Error('VMDK descriptor too long for the embedded area');
  const meta = new Uint8Array(header.overhead * SECTOR);
  meta.set(serializeSparseHeader(header), 0);
  meta.set(text, SECTOR);
  if (!stream) {
    const v = new DataView(meta.buffer);
    const tablesAfter = (dir: number) => dir + gdSectors;
    for (const dir of [header.rgdOffset, header.gdOffset]) {
      for (let g = 0; g < header.gdEntries; g++) v.setUint32(dir * SECTOR + g * 4, tablesAfter(dir) + g * gtSectors, true);
    }
  }
  const file = await openProtocol(filename, { create: true });
  try {
    await file.writeGrow(0, meta);
    if (stream) await StreamTail.empty(header).finish(file, new Uint32Array(header.gdEntries), new Map());
    await file.flush();
  } finally {
    await file.close();
  }
}

async function createFlatExtent(filename: string, bytes: number): Promise<void> {
  const file = await openProtocol(filename, { create: true });
  try {
    if (bytes > 0) await file.truncate(bytes);
  } finally {
    await file.close();
  }
}

/** The CID of the backing image (which must be a VMDK). */
async function backingCid(imageFilename: string, backing: string): Promise<number> {
  const img = await openImage(resolveBackingPath(imageFilename, backing), { readOnly: true, forceShare: true, backing: false });
  try {
    if (!(img instanceof VmdkNode)) throw new Error('backing_file must be a vmdk image');
    return img.cid;
  } finally {
    await closeImage(img);
  }
}

function extentName(base: string, subformat: string, index: number): string {
  if (subformat === 'monolithicFlat') return `${base}-flat.vmdk`;
  const n = String(index + 1).padStart(3, '0');
  return `${base}-${subformat === 'twoGbMaxExtentSparse' ? 's' : 'f'}${n}.vmdk`;
}

export async function createVmdk(req: CreateRequest): Promise<void> {
  const s = parseVmdkCreateOptions(req.options);
  const sectors = Math.ceil(req.size / SECTOR);
  const parentCid = s.backingFile !== null ? await backingCid(req.filename, s.backingFile) : NO_PARENT_CID;
  const heads = s.adapterType === 'ide' ? 16 : 255;
  const monolithic = s.subformat === 'monolithicSparse' || s.subformat === 'streamOptimized';
  const base = path.basename(req.filename).replace(/\.vmdk$/, '');
  const dir = path.dirname(req.filename);
  const extents: ExtentLine[] = [];
  if (monolithic) {
    extents.push({ access: 'RW', sectors, type: 'SPARSE', filename: path.basename(req.filename), offset: 0 });
  } else {
    const chunk = s.subformat === 'monolithicFlat' ? Math.max(req.size, SECTOR) : SPLIT_BYTES;
    for (let at = 0, i = 0; at < req.size || i === 0; at += chunk, i++) {
      const bytes = Math.min(chunk, req.size - at);
      const flat = s.subformat.endsWith('Flat');
      extents.push({ access: 'RW', sectors: bytes / SECTOR, type: flat ? 'FLAT' : 'SPARSE', filename: extentName(base, s.subformat, i), offset: 0 });
    }
  }
  const extraDdb: [string, string][] = [['ddb.uuid.image', s.uuid]];
  if (s.subformat === 'streamOptimized') extraDdb.push(['ddb.toolsInstallType', '4']);
  const descriptor = buildDescriptor({
    cid: randomInt(0, 2 ** 32 - 1),
    parentCid,
    createType: s.subformat,
    parentFileNameHint: s.backingFile,
    extents,
    hwVersion: s.hwVersion,
    cylinders: Math.floor(sectors / (heads * 63)),
    heads,
    adapterType: s.adapterType,
    toolsVersion: s.toolsVersion,
    extraDdb,
  });
  if (monolithic) {
    await createSparseExtent(req.filename, sectors, s, s.subformat === 'streamOptimized', descriptor);
    return;
  }
  for (const e of extents) {
    const name = path.join(dir, e.filename);
    if (e.type === 'FLAT') await createFlatExtent(name, e.sectors * SECTOR);
    else await createSparseExtent(name, e.sectors, s, false, null);
  }
  const file = await openProtocol(req.filename, { create: true });
  try {
    await file.writeGrow(0, new TextEncoder().encode(descriptor));
    await file.flush();
  } finally {
    await file.close();
  }
}
