/**
 * Headers of VMDK sparse extents (little-endian):
 *
 * - the hosted sparse extent ("KDMV", VMware Virtual Disk Format 1.1): version,
 *   flags (bit 0 newline test, 1 redundant grain table, 2 zeroed-grain entries,
 *   16 compressed grains, 17 markers), capacity, grain size, embedded descriptor
 *   place, grain-table entries per table (512), redundant and primary grain
 *   directory offsets (sectors; all ones = "at the end", read from the footer),
 *   overhead (sectors of metadata before the first grain), unclean-shutdown byte,
 *   the four newline-detection bytes and the compression algorithm (1 = deflate);
 * - the ESX sparse extent ("COWD", vmfsSparse): capacity, grain size, directory
 *   offset and length, in 32-bit fields; its grain tables hold 4096 entries.
 *
 * Parsing checks that the geometry is sane (power-of-two grains, table sizes,
 * a directory large enough for the capacity and inside the file) before anything
 * is read through it.
 */
import { ImageFormatError } from '../../node.js';

export const KDMV_MAGIC = 0x564d444b;
export const COWD_MAGIC = 0x44574f43;
export const FLAG_NL_DETECT = 1 << 0;
export const FLAG_RGD = 1 << 1;
export const FLAG_ZEROED_GRAIN = 1 << 2;
export const FLAG_COMPRESSED = 1 << 16;
export const FLAG_MARKERS = 1 << 17;
export const COMPRESSION_DEFLATE = 1;
/** A directory offset of all ones: the directory is at the end (stream-optimized footer). */
export const GD_AT_END = -1;
export const SECTOR = 512;
const KDMV_GT_ENTRIES = 512;
const COWD_GT_ENTRIES = 4096;

export interface SparseHeader {
  kind: 'KDMV' | 'COWD';
  version: number;
  flags: number;
  /** Sectors. */
  capacity: number;
  /** Sectors per grain. */
  grainSectors: number;
  descriptorOffset: number;
  descriptorSize: number;
  gtEntries: number;
  /** Sectors, 0 = none. */
  rgdOffset: number;
  /** Sectors, or GD_AT_END. */
  gdOffset: number;
  /** Number of directory entries (COWD gives it; KDMV's follows from capacity). */
  gdEntries: number;
  overhead: number;
  uncleanShutdown: number;
  compressAlgorithm: number;
}

function u64(v: DataView, at: number): number {
  const lo = v.getUint32(at, true);
  const hi = v.getUint32(at + 4, true);
  if (lo === 0xffffffff && hi === 0xffffffff) return GD_AT_END;
  if (hi >= 0x200000) throw new ImageFormatError(`invalid VMDK header: 64-bit field at byte ${at} is out of range`);
  return hi * 2 ** 32 + lo;
}

function setU64(v: DataView, at: number, value: number): void {
  if (value === GD_AT_END) {
    v.setUint32(at, 0xffffffff, true);
    v.setUint32(at + 4, 0xffffffff, true);
  } else {
    v.setUint32(at, value % 2 ** 32, true);
    v.setUint32(at + 4, Math.floor(value / 2 ** 32), true);
  }
}

export function sparseMagic(head: Uint8Array): number {
  if (head.length < 4) return 0;
  return new DataView(head.buffer, head.byteOffset, head.byteLength).getUint32(0, true);
}

export function parseSparseHeader(buf: Uint8Array, fileSize: number): SparseHeader {
  if (buf.length < SECTOR) throw new ImageFormatError('VMDK sparse extent is truncated (no whole header)');
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = v.getUint32(0, true);
  let h: SparseHeader;
  if (magic === KDMV_MAGIC) {
    h = {
      kind: 'KDMV',
      version: v.getUint32(4, true),
      flags: v.getUint32(8, true),
      capacity: u64(v, 12),
      grainSectors: u64(v, 20),
      descriptorOffset: u64(v, 28),
      descriptorSize: u64(v, 36),
      gtEntries: v.getUint32(44, true),
      rgdOffset: u64(v, 48),
      gdOffset: u64(v, 56),
      gdEntries: 0,
      overhead: u64(v, 64),
      uncleanShutdown: v.getUint8(72),
      compressAlgorithm: v.getUint16(77, true),
    };
    if (h.version < 1 || h.version > 3) throw new ImageFormatError(`unsupported VMDK version ${h.version}`);
    if (h.gtEntries !== KDMV_GT_ENTRIES) throw new ImageFormatError(`invalid VMDK header: ${h.gtEntries} grain table entries (expected 512)`);
    if ((h.flags & FLAG_COMPRESSED) && h.compressAlgorithm !== COMPRESSION_DEFLATE) {
      throw new ImageFormatError(`unsupported VMDK compression algorithm ${h.compressAlgorithm}`);
    }
    if ((h.flags & FLAG_COMPRESSED) && !(h.flags & FLAG_MARKERS)) {
      throw new ImageFormatError('unsupported VMDK image: compressed grains without markers');
    }
  } else if (magic === COWD_MAGIC) {
    h = {
      kind: 'COWD',
      version: v.getUint32(4, true),
      flags: v.getUint32(8, true),
      capacity: v.getUint32(12, true),
      grainSectors: v.getUint32(16, true),
      descriptorOffset: 0,
      descriptorSize: 0,
      gtEntries: COWD_GT_ENTRIES,
      rgdOffset: 0,
      gdOffset: v.getUint32(20, true),
      gdEntries: v.getUint32(24, true),
      overhead: 0,
      uncleanShutdown: 0,
      compressAlgorithm: 0,
    };
  } else {
    throw new ImageFormatError('not a VMDK sparse extent (bad magic)');
  }
  if (h.grainSectors < 1 || h.grainSectors > 2048 || (h.grainSectors & (h.grainSectors - 1)) !== 0) {
    throw new ImageFormatError(`invalid VMDK header: grain size ${h.grainSectors} sectors`);
  }
  if (h.capacity > Math.floor(Number.MAX_SAFE_INTEGER / SECTOR)) throw new ImageFormatError('invalid VMDK header: capacity out of range');
  const needed = Math.ceil(h.capacity / (h.grainSectors * h.gtEntries));
  if (h.kind === 'KDMV') h.gdEntries = needed;
  else if (h.gdEntries < needed) throw new ImageFormatError(`invalid VMDK header: ${h.gdEntries} directory entries cannot map the capacity`);
  if (h.gdOffset !== GD_AT_END && (h.gdOffset * SECTOR + h.gdEntries * 4 > fileSize || (h.gdEntries > 0 && h.gdOffset === 0))) {
    throw new ImageFormatError('VMDK grain directory is past the end of the file (truncated image?)');
  }
  if (h.rgdOffset !== GD_AT_END && h.rgdOffset * SECTOR + h.gdEntries * 4 > fileSize) {
    throw new ImageFormatError('VMDK redundant grain directory is past the end of the file (truncated image?)');
  }
  return h;
}

export function serializeSparseHeader(h: SparseHeader): Uint8Array {
  const buf = new Uint8Array(SECTOR);
  const v = new DataView(buf.buffer);
  v.setUint32(0, KDMV_MAGIC, true);
  v.setUint32(4, h.version, true);
  v.setUint32(8, h.flags, true);
  setU64(v, 12, h.capacity);
  setU64(v, 20, h.grainSectors);
  setU64(v, 28, h.descriptorOffset);
  setU64(v, 36, h.descriptorSize);
  v.setUint32(44, h.gtEntries, true);
  setU64(v, 48, h.rgdOffset);
  setU64(v, 56, h.gdOffset);
  setU64(v, 64, h.overhead);
  v.setUint8(72, h.uncleanShutdown);
  buf.set([0x0a, 0x20, 0x0d, 0x0a], 73);
  v.setUint16(77, h.compressAlgorithm, true);
  return buf;
}

/** Little-endian u32 table entries (grain directories and tables). */
export function decodeEntries(raw: Uint8Array): Uint32Array {
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = new Uint32Array(raw.length >>> 2);
  for (let i = 0; i < out.length; i++) out[i] = v.getUint32(i * 4, true);
  return out;
}

export function encodeEntries(entries: Uint32Array): Uint8Array {
  const raw = new Uint8Array(entries.length * 4);
  const v = new DataView(raw.buffer);
  for (let i = 0; i < entries.length; i++) v.setUint32(i * 4, entries[i]!, true);
  return raw;
}
