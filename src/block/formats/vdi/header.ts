/**
 * The VDI (VirtualBox) header, version 1.1, as VirtualBox lays it out and qemu-img
 * writes it (all integers little-endian):
 *
 *   0x000  64-byte text line ("<<< … Disk Image >>>\n")
 *   0x040  signature 0xbeda107f, version 0x00010001, header size (0x180)
 *   0x04c  image type (1 dynamic, 2 static), image flags
 *   0x054  256-byte description
 *   0x154  block-map offset, data offset (bytes from the file start)
 *   0x15c  legacy geometry (cylinders, heads, sectors, sector size 512), unused word
 *   0x170  disk size (u64), block size, extra bytes per block, blocks in image,
 *          blocks allocated
 *   0x188  UUIDs: this image, last snapshot, link, parent (16 bytes each)
 *
 * The block map that follows holds one u32 per block: the index of the block in
 * the data area, or UNALLOCATED (reads as zeroes) or ZERO (explicitly zeroed).
 * UUIDs are stored the way VirtualBox does (first three fields little-endian).
 *
 * parseVdiHeader checks everything open relies on and throws ImageFormatError with
 * a message naming the bad field; it never trusts a count or an offset blindly.
 */
import { randomUUID } from 'node:crypto';
import { ImageFormatError } from '../../node.js';
import { guidBytes } from '../disk-uuid.js';

export const VDI_SIGNATURE = 0xbeda107f;
export const VDI_VERSION_1_1 = 0x00010001;
export const VDI_HEADER_SIZE = 0x180;
export const VDI_TYPE_DYNAMIC = 1;
export const VDI_TYPE_STATIC = 2;
export const VDI_UNALLOCATED = 0xffffffff;
export const VDI_ZERO = 0xfffffffe;
export const VDI_SECTOR = 512;
export const VDI_DEFAULT_BLOCK_SIZE = 1 << 20;
/** The first 512 bytes hold the pre-header and header; the block map starts after them. */
export const VDI_BMAP_OFFSET = 512;
/** The largest block count VirtualBox and QEMU accept. */
export const VDI_MAX_BLOCKS = 0x3fffffff;
const TEXT = '<<< QEMU VM Virtual Disk Image >>>\n';

export interface VdiHeader {
  text: string;
  imageType: number;
  imageFlags: number;
  description: Uint8Array;
  offsetBmap: number;
  offsetData: number;
  cylinders: number;
  heads: number;
  sectors: number;
  diskSize: number;
  blockSize: number;
  blockExtra: number;
  blocksInImage: number;
  blocksAllocated: number;
  uuidImage: Uint8Array;
  uuidLastSnap: Uint8Array;
  uuidLink: Uint8Array;
  uuidParent: Uint8Array;
}

export function looksLikeVdi(head: Uint8Array): boolean {
  if (head.length < 0x48) return false;
  return new DataView(head.buffer, head.byteOffset, head.byteLength).getUint32(0x40, true) === VDI_SIGNATURE;
}


export function parseVdiHeader(buf: Uint8Array, fileSize: number): VdiHeader {
  if (buf.length < VDI_BMAP_OFFSET) throw new ImageFormatError('VDI header is truncated');
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (v.getUint32(0x40, true) !== VDI_SIGNATURE) throw new ImageFormatError('not a VDI image (bad signature)');
  const version = v.getUint32(0x44, true);
  if (version !== VDI_VERSION_1_1) {
    throw new ImageFormatError(`unsupported VDI image (version ${version >>> 16}.${version & 0xffff})`);
  }
  const headerSize = v.getUint32(0x48, true);
  if (headerSize < VDI_HEADER_SIZE) throw new ImageFormatError(`unsupported VDI image (header size ${headerSize})`);
  const diskSizeHigh = v.getUint32(0x174, true);
  const h: VdiHeader = {
    text: new TextDecoder('latin1').decode(buf.subarray(0, 64)).replace(/\0.*$/s, ''),
    imageType: v.getUint32(0x4c, true),
    imageFlags: v.getUint32(0x50, true),
    description: buf.slice(0x54, 0x154),
    offsetBmap: v.getUint32(0x154, true),
    offsetData: v.getUint32(0x158, true),
    cylinders: v.getUint32(0x15c, true),
    heads: v.getUint32(0x160, true),
    sectors: v.getUint32(0x164, true),
    diskSize: diskSizeHigh * 2 ** 32 + v.getUint32(0x170, true),
    blockSize: v.getUint32(0x178, true),
    blockExtra: v.getUint32(0x17c, true),
    blocksInImage: v.getUint32(0x180, true),
    blocksAllocated: v.getUint32(0x184, true),
    uuidImage: buf.slice(0x188, 0x198),
    uuidLastSnap: buf.slice(0x198, 0x1a8),
    uuidLink: buf.slice(0x1a8, 0x1b8),
    uuidParent: buf.slice(0x1b8, 0x1c8),
  };
  const sectorSize = v.getUint32(0x168, true);
  if (h.imageType !== VDI_TYPE_DYNAMIC && h.imageType !== VDI_TYPE_STATIC) {
    throw new ImageFormatError(`unsupported VDI image (image type ${h.imageType})`);
  }
  if (sectorSize !== VDI_SECTOR) throw new ImageFormatError(`unsupported VDI image (sector size ${sectorSize} is not ${VDI_SECTOR})`);
  if (h.blockSize < VDI_SECTOR || h.blockSize > 1 << 28 || (h.blockSize & (h.blockSize - 1)) !== 0) {
    throw new ImageFormatError(`unsupported VDI image (block size ${h.blockSize})`);
  }
  if (h.blockExtra !== 0) throw new ImageFormatError(`unsupported VDI image (block extra ${h.blockExtra} is not 0)`);
  if (h.offsetBmap % VDI_SECTOR !== 0 || h.offsetBmap < VDI_BMAP_OFFSET) {
    throw new ImageFormatError(`unsupported VDI image (block map offset ${h.offsetBmap})`);
  }
  if (h.offsetData % VDI_SECTOR !== 0) throw new ImageFormatError(`unsupported VDI image (data offset ${h.offsetData})`);
  if (h.blocksInImage > VDI_MAX_BLOCKS) {
    throw new ImageFormatError(`unsupported VDI image (${h.blocksInImage} blocks in image)`);
  }
  if (h.diskSize > h.blocksInImage * h.blockSize) {
    throw new ImageFormatError(
      `unsupported VDI image (disk size ${h.diskSize}, image bitmap has room for ${h.blocksInImage * h.blockSize})`,
    );
  }
  if (h.blocksAllocated > h.blocksInImage) {
    throw new ImageFormatError(`invalid VDI image (${h.blocksAllocated} blocks allocated of ${h.blocksInImage})`);
  }
  const bmapEnd = h.offsetBmap + h.blocksInImage * 4;
  if (bmapEnd > h.offsetData) throw new ImageFormatError('invalid VDI image (block map overlaps the data area)');
  if (bmapEnd > fileSize) throw new ImageFormatError('VDI image is truncated (block map past the end of the file)');
  return h;
}

export function serializeVdiHeader(h: VdiHeader): Uint8Array {
  const buf = new Uint8Array(VDI_BMAP_OFFSET);
  const v = new DataView(buf.buffer);
  buf.set(new TextEncoder().encode(h.text).subarray(0, 63), 0);
  v.setUint32(0x40, VDI_SIGNATURE, true);
  v.setUint32(0x44, VDI_VERSION_1_1, true);
  v.setUint32(0x48, VDI_HEADER_SIZE, true);
  v.setUint32(0x4c, h.imageType, true);
  v.setUint32(0x50, h.imageFlags, true);
  buf.set(h.description.subarray(0, 256), 0x54);
  v.setUint32(0x154, h.offsetBmap, true);
  v.setUint32(0x158, h.offsetData, true);
  v.setUint32(0x15c, h.cylinders, true);
  v.setUint32(0x160, h.heads, true);
  v.setUint32(0x164, h.sectors, true);
  v.setUint32(0x168, VDI_SECTOR, true);
  v.setUint32(0x170, h.diskSize % 2 ** 32, true);
  v.setUint32(0x174, Math.floor(h.diskSize / 2 ** 32), true);
  v.setUint32(0x178, h.blockSize, true);
  v.setUint32(0x17c, h.blockExtra, true);
  v.setUint32(0x180, h.blocksInImage, true);
  v.setUint32(0x184, h.blocksAllocated, true);
  buf.set(h.uuidImage, 0x188);
  buf.set(h.uuidLastSnap, 0x198);
  buf.set(h.uuidLink, 0x1a8);
  buf.set(h.uuidParent, 0x1b8);
  return buf;
}

/** The header of a new image of `diskSize` bytes with image UUID `uuid` and a fresh snapshot UUID. */
export function newVdiHeader(diskSize: number, isStatic: boolean, uuid: string, blockSize = VDI_DEFAULT_BLOCK_SIZE): VdiHeader {
  const blocks = Math.ceil(diskSize / blockSize);
  const bmapBytes = Math.ceil((blocks * 4) / VDI_SECTOR) * VDI_SECTOR;
  return {
    text: TEXT,
    imageType: isStatic ? VDI_TYPE_STATIC : VDI_TYPE_DYNAMIC,
    imageFlags: 0,
    description: new Uint8Array(256),
    offsetBmap: VDI_BMAP_OFFSET,
    offsetData: VDI_BMAP_OFFSET + bmapBytes,
    cylinders: 0,
    heads: 0,
    sectors: 0,
    diskSize,
    blockSize,
    blockExtra: 0,
    blocksInImage: blocks,
    blocksAllocated: isStatic ? blocks : 0,
    uuidImage: guidBytes(uuid),
    uuidLastSnap: guidBytes(randomUUID()),
    uuidLink: new Uint8Array(16),
    uuidParent: new Uint8Array(16),
  };
}
