/**
 * Creating vpc (VHD) images with qemu-img 7.2's options (driver.ts lists them)
 * and differencing images (-b PARENT -F vpc), as driver.ts describes.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { parseBool } from '../../options.js';
import { closeImage, openImage, resolveBackingPath } from '../../open.js';
import { openProtocol } from '../../protocols/index.js';
import type { CreateRequest } from '../format.js';
import { diskUuidFromOptions, uuidBytes } from '../disk-uuid.js';
import { VPC_CREATE_OPTIONS } from './create-options.js';
import {
  chsGeometry,
  DEFAULT_BLOCK_SIZE,
  DISK_DIFFERENCING,
  DISK_DYNAMIC,
  DISK_FIXED,
  DYN_HEADER_BYTES,
  FOOTER_BYTES,
  type Geometry,
  MAX_GEOMETRY,
  serializeDynHeader,
  serializeFooter,
  type VhdFooter,
  vhdSeconds,
  virtualSize,
} from './footer.js';
import { VpcNode } from './node.js';
import { newParentLocators } from './parent.js';

/** Dynamic disks: the largest size the specification allows (2040 GiB). */
const MAX_DYNAMIC_SECTORS = 0xff000000;
const TOO_LARGE = "The image size is too large for file format 'vpc'";

/** The geometry and exact byte size of a new disk of `size` bytes. */
function newDiskSize(size: number, forceSize: boolean): { geometry: Geometry; bytes: number } {
  const sectors = Math.ceil(size / 512);
  if (forceSize) return { geometry: { ...MAX_GEOMETRY }, bytes: sectors * 512 };
  for (let extra = 0; ; extra++) {
    const g = chsGeometry(sectors + extra);
    if (!g) throw new Error(TOO_LARGE);
    const chs = g.cylinders * g.heads * g.sectors;
    if (chs >= sectors) return { geometry: g, bytes: chs * 512 };
  }
}

export async function createVpc(req: CreateRequest): Promise<void> {
  for (const key of req.options.keys()) {
    if (!VPC_CREATE_OPTIONS.some((o) => o.name === key)) throw new Error(`Invalid parameter '${key}'`);
  }
  const backing = req.options.get('backing_file');
  if (backing !== undefined) return createDifferencing(req, backing);
  const subformat = req.options.get('subformat') ?? 'dynamic';
  if (subformat !== 'dynamic' && subformat !== 'fixed') throw new Error(`Parameter 'subformat' does not accept value '${subformat}'`);
  const forceSize = parseBool(req.options.get('force_size') ?? 'off', 'force_size');
  const { geometry, bytes } = newDiskSize(req.size, forceSize);
  const dynamic = subformat === 'dynamic';
  if (dynamic && bytes / 512 > MAX_DYNAMIC_SECTORS) throw new Error(TOO_LARGE);
  const footer: VhdFooter = {
    dataOffset: dynamic ? FOOTER_BYTES : -1,
    creatorApp: forceSize ? 'qem2' : 'qemu',
    currentSize: bytes,
    geometry,
    diskType: dynamic ? DISK_DYNAMIC : DISK_FIXED,
  };
  if (!dynamic) {
    const file = await openProtocol(req.filename, { create: true });
    try {
      if (bytes > 0) await file.truncate(bytes);
      await file.writeGrow(bytes, serializeFooter(footer, uuidBytes(diskUuidFromOptions(req.options))));
      await file.flush();
    } finally {
      await file.close();
    }
    return;
  }
  await writeSparse(req, footer, null);
}

/**
 * Writes a new dynamic or differencing image: footer copy, dynamic header, an
 * all-unallocated BAT (every entry all ones, padded to a sector), the parent
 * locators' data when there is a parent, and the footer.
 */
async function writeSparse(req: CreateRequest, footer: VhdFooter, parent: ParentSpec | null): Promise<void> {
  // A child copies its parent's footer, whose geometry may give more than the current size.
  const entries = Math.ceil(Math.max(footer.currentSize, virtualSize(footer)) / DEFAULT_BLOCK_SIZE);
  const tableOffset = FOOTER_BYTES + DYN_HEADER_BYTES;
  const bat = new Uint8Array(Math.ceil((entries * 4) / 512) * 512).fill(0xff);
  const locators = parent ? newParentLocators(parent.relative, parent.absolute, tableOffset + bat.length) : null;
  const dyn = serializeDynHeader({
    tableOffset,
    maxTableEntries: entries,
    blockSize: DEFAULT_BLOCK_SIZE,
    parent: parent && locators ? { uniqueId: parent.uniqueId, timestamp: parent.timestamp, name: parent.name, locators: locators.locators } : undefined,
  });
  const foot = serializeFooter(footer, uuidBytes(diskUuidFromOptions(req.options)));
  const file = await openProtocol(req.filename, { create: true });
  try {
    await file.writevGrow(0, [foot, dyn, bat, ...(locators ? [locators.data] : []), foot]);
    await file.flush();
  } finally {
    await file.close();
  }
}

/** The parent of a new differencing image, as its dynamic header records it. */
interface ParentSpec {
  uniqueId: Uint8Array;
  timestamp: number;
  name: string;
  relative: string;
  absolute: string;
}

async function createDifferencing(req: CreateRequest, backing: string): Promise<void> {
  const fmt = req.options.get('backing_fmt');
  if (fmt !== undefined && fmt !== 'vpc') throw new Error("The parent of a differencing VHD must be a VHD (backing_fmt 'vpc')");
  if ((req.options.get('subformat') ?? 'dynamic') !== 'dynamic') throw new Error('Only dynamic VHD images can have a backing file');
  if (req.options.has('force_size')) throw new Error('force_size cannot be used with a backing file (the parent decides the size)');
  const absolute = path.resolve(resolveBackingPath(req.filename, backing));
  const parent = await openImage(absolute, { format: 'vpc', readOnly: true, backing: false, forceShare: true });
  try {
    if (!(parent instanceof VpcNode)) throw new Error('The parent of a differencing VHD must be a VHD');
    if (req.size !== parent.size()) {
      throw new Error(`A differencing VHD has the size of its parent (${parent.size()} bytes), not ${req.size}`);
    }
    const p = parent.footer;
    const footer: VhdFooter = { ...p, dataOffset: FOOTER_BYTES, diskType: DISK_DIFFERENCING };
    await writeSparse(req, footer, {
      uniqueId: uuidBytes(parent.diskUuid),
      timestamp: vhdSeconds((await stat(absolute)).mtimeMs),
      name: path.basename(absolute),
      relative: path.relative(path.dirname(path.resolve(req.filename)), absolute),
      absolute,
    });
  } finally {
    await closeImage(parent);
  }
}
