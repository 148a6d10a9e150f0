/**
 * The VHDX metadata region: a table ("metadata", entry count, then 32-byte
 * entries: item GUID, offset from the region start (at least 64 KiB), length,
 * flags (bit 0 user, bit 1 virtual disk, bit 2 required)) and the items it
 * points at. The items this driver knows:
 *
 *   file parameters     block size (1 MiB..256 MiB, a power of two), flags
 *                       (bit 0 leave blocks allocated, bit 1 has parent)
 *   virtual disk size   u64, a multiple of the logical sector size, at most 64 TiB
 *   logical / physical  sector sizes, 512 or 4096
 *   page 83 data        the disk's GUID (VirtualDiskId)
 *   parent locator      differencing images: a locator type GUID and key/value
 *                       pairs (UTF-16 strings) naming the parent file
 *
 * An unknown item marked required makes the image unreadable, as the
 * specification demands. parseMetadata() checks every offset and length against
 * the region and throws ImageFormatError naming the bad item.
 */
import { ImageFormatError } from '../../node.js';
import { guidBytes } from '../disk-uuid.js';
import { ascii, getU64, guidText, MiB, setU64, view } from './layout.js';

export const FILE_PARAMETERS_GUID = 'caa16737-fa36-4d43-b3b6-33f0aa44e76b';
export const VIRTUAL_DISK_SIZE_GUID = '2fa54224-cd1b-4876-b211-5dbed83bf4b8';
export const PAGE83_GUID = 'beca12ab-b2e6-4523-93ef-c309e000c746';
export const LOGICAL_SECTOR_GUID = '8141bf1d-a96f-4709-ba47-f233a8faab5f';
export const PHYSICAL_SECTOR_GUID = 'cda348c7-445d-4471-9cc9-e9885251c556';
export const PARENT_LOCATOR_GUID = 'a8d35f2d-b30b-454d-abf7-d3d84834ab0c';

export const MIN_BLOCK_SIZE = MiB;
export const MAX_BLOCK_SIZE = 256 * MiB;
export const MAX_DISK_SIZE = 64 * 2 ** 40;
const TABLE_BYTES = 64 * 1024;
const MAX_ENTRIES = 2047;
const KNOWN = [FILE_PARAMETERS_GUID, VIRTUAL_DISK_SIZE_GUID, PAGE83_GUID, LOGICAL_SECTOR_GUID, PHYSICAL_SECTOR_GUID, PARENT_LOCATOR_GUID];

export interface VhdxMetadata {
  blockSize: number;
  leaveBlocksAllocated: boolean;
  hasParent: boolean;
  diskSize: number;
  logicalSectorSize: number;
  physicalSectorSize: number;
  /** The page 83 VirtualDiskId, canonical text. */
  diskId: string;
  /** Parent locator key/value pairs (differencing images), else null. */
  parentLocator: Map<string, string> | null;
}

function item(region: Uint8Array, guid: string, entries: Map<string, { offset: number; length: number }>, minLength: number): DataView {
  const e = entries.get(guid);
  if (!e) throw new ImageFormatError(`invalid VHDX: metadata item ${guid} is missing`);
  if (e.length < minLength) throw new ImageFormatError(`invalid VHDX: metadata item ${guid} is ${e.length} bytes, shorter than ${minLength}`);
  return new DataView(region.buffer, region.byteOffset + e.offset, e.length);
}

/** Parses the metadata region's bytes (the whole region). */
export function parseMetadata(region: Uint8Array): VhdxMetadata {
  const v = view(region);
  if (region.length < TABLE_BYTES || ascii(region, 0, 8) !== 'metadata') {
    throw new ImageFormatError('invalid VHDX: no "metadata" signature in the metadata region');
  }
  const count = v.getUint16(10, true);
  if (count > MAX_ENTRIES) throw new ImageFormatError(`invalid VHDX: ${count} metadata entries`);
  const entries = new Map<string, { offset: number; length: number }>();
  for (let i = 0; i < count; i++) {
    const at = 32 + i * 32;
    const guid = guidText(region, at);
    const offset = v.getUint32(at + 16, true);
    const length = v.getUint32(at + 20, true);
    const required = (v.getUint32(at + 24, true) & 4) !== 0;
    if (!KNOWN.includes(guid)) {
      if (required) throw new ImageFormatError(`unsupported VHDX: unknown required metadata item ${guid}`);
      continue;
    }
    if (entries.has(guid)) throw new ImageFormatError(`invalid VHDX: metadata item ${guid} appears twice`);
    if (length > 0 && (offset < TABLE_BYTES || offset + length > region.length)) {
      throw new ImageFormatError(`invalid VHDX: metadata item ${guid} at ${offset} of ${length} bytes lies outside the metadata region`);
    }
    entries.set(guid, { offset, length });
  }
  const params = item(region, FILE_PARAMETERS_GUID, entries, 8);
  const blockSize = params.getUint32(0, true);
  const bits = params.getUint32(4, true);
  if (blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE || (blockSize & (blockSize - 1)) !== 0) {
    throw new ImageFormatError(`invalid VHDX: block size ${blockSize} (must be a power of two from 1 MiB to 256 MiB)`);
  }
  const logicalSectorSize = item(region, LOGICAL_SECTOR_GUID, entries, 4).getUint32(0, true);
  const physicalSectorSize = item(region, PHYSICAL_SECTOR_GUID, entries, 4).getUint32(0, true);
  for (const [name, s] of [['logical', logicalSectorSize], ['physical', physicalSectorSize]] as const) {
    if (s !== 512 && s !== 4096) throw new ImageFormatError(`invalid VHDX: ${name} sector size ${s} (must be 512 or 4096)`);
  }
  const diskSize = getU64(item(region, VIRTUAL_DISK_SIZE_GUID, entries, 8), 0, 'virtual disk size');
  if (diskSize > MAX_DISK_SIZE || diskSize % logicalSectorSize !== 0) {
    throw new ImageFormatError(`invalid VHDX: virtual disk size ${diskSize}`);
  }
  const page83 = item(region, PAGE83_GUID, entries, 16);
  const hasParent = (bits & 2) !== 0;
  return {
    blockSize,
    leaveBlocksAllocated: (bits & 1) !== 0,
    hasParent,
    diskSize,
    logicalSectorSize,
    physicalSectorSize,
    diskId: guidText(new Uint8Array(page83.buffer, page83.byteOffset, 16), 0),
    parentLocator: hasParent ? parseParentLocator(item(region, PARENT_LOCATOR_GUID, entries, 20)) : null,
  };
}

/** The key/value pairs of a parent locator item (UTF-16 strings, offsets relative to the item). */
function parseParentLocator(v: DataView): Map<string, string> {
  const count = v.getUint16(18, true);
  if (20 + count * 12 > v.byteLength) throw new ImageFormatError(`invalid VHDX: parent locator with ${count} entries does not fit its item`);
  const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  const text = (offset: number, length: number, what: string): string => {
    if (offset + length > v.byteLength || length % 2 !== 0) throw new ImageFormatError(`invalid VHDX: parent locator ${what} lies outside its item`);
    return new TextDecoder('utf-16le').decode(bytes.subarray(offset, offset + length));
  };
  const pairs = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const at = 20 + i * 12;
    const key = text(v.getUint32(at, true), v.getUint16(at + 8, true), `key ${i}`);
    pairs.set(key, text(v.getUint32(at + 4, true), v.getUint16(at + 10, true), `value ${i}`));
  }
  return pairs;
}

/** The metadata region of a new image (1 MiB): table and the five items of a non-differencing disk. */
export function serializeMetadata(m: Omit<VhdxMetadata, 'hasParent' | 'parentLocator'>): Uint8Array {
  const region = new Uint8Array(MiB);
  const v = view(region);
  region.set(new TextEncoder().encode('metadata'), 0);
  const items: { guid: string; length: number; flags: number; fill: (d: DataView) => void }[] = [
    { guid: FILE_PARAMETERS_GUID, length: 8, flags: 4, fill: (d) => { d.setUint32(0, m.blockSize, true); d.setUint32(4, m.leaveBlocksAllocated ? 1 : 0, true); } },
    { guid: VIRTUAL_DISK_SIZE_GUID, length: 8, flags: 6, fill: (d) => setU64(d, 0, m.diskSize) },
    { guid: PAGE83_GUID, length: 16, flags: 6, fill: (d) => new Uint8Array(d.buffer, d.byteOffset, 16).set(guidBytes(m.diskId)) },
    { guid: LOGICAL_SECTOR_GUID, length: 4, flags: 6, fill: (d) => d.setUint32(0, m.logicalSectorSize, true) },
    { guid: PHYSICAL_SECTOR_GUID, length: 4, flags: 6, fill: (d) => d.setUint32(0, m.physicalSectorSize, true) },
  ];
  v.setUint16(10, items.length, true);
  let offset = TABLE_BYTES;
  items.forEach((it, i) => {
    const at = 32 + i * 32;
    region.set(guidBytes(it.guid), at);
    v.setUint32(at + 16, offset, true);
    v.setUint32(at + 20, it.length, true);
    v.setUint32(at + 24, it.flags, true);
    it.fill(new DataView(region.buffer, offset, it.length));
    offset += it.length;
  });
  return region;
}
