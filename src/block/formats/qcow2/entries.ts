/**
 * qcow2 L1 and L2 table entries (docs/interop/qcow2.txt, "Cluster mapping" and
 * "Extended L2 Entries"): decoding and encoding without BigInt.
 *
 * Entries are 64-bit big-endian words read as two 32-bit halves (hi, lo):
 *   L1 entry:  bit 63 COPIED, bits 9..55 L2 table offset.
 *   L2 entry:  bit 63 COPIED, bit 62 compressed; standard clusters carry the
 *              host offset in bits 9..55 and the zero flag in bit 0 (version 3
 *              without extended L2); compressed clusters carry a host byte offset
 *              in bits 0..x-1 and the count of additional 512-byte sectors in
 *              bits x..61, x = 62 - (cluster_bits - 8).
 *   Extended L2 entries add a 64-bit bitmap: bits 0..31 "subcluster allocated",
 *   bits 32..63 "subcluster reads as zeroes" (32 subclusters per cluster).
 * Offsets are numbers; an offset that is not cluster aligned is reported as an
 * ImageFormatError naming the table and index.
 */
import { ImageFormatError } from '../../node.js';

export const COPIED_HI = 0x80000000;
export const COMPRESSED_HI = 0x40000000;
export const ZERO_LO = 0x1;
const OFFSET_HI_MASK = 0x00ffffff;
const OFFSET_LO_MASK = 0xfffffe00;
const TWO_32 = 4294967296;
export const SUBCLUSTERS = 32;
export const ALL_SUBCLUSTERS = 0xffffffff;

/** Bits 9..55 of an entry: the cluster-aligned offset it points to. */
export function entryOffset(hi: number, lo: number): number {
  return (hi & OFFSET_HI_MASK) * TWO_32 + ((lo & OFFSET_LO_MASK) >>> 0);
}

/** Writes an offset with flags into the entry at byte `at` of a table view. */
export function setEntry(dv: DataView, at: number, offset: number, copied: boolean, zero = false): void {
  const hi = Math.floor(offset / TWO_32);
  const lo = offset - hi * TWO_32;
  dv.setUint32(at, (hi | (copied ? COPIED_HI : 0)) >>> 0);
  dv.setUint32(at + 4, (lo | (zero ? ZERO_LO : 0)) >>> 0);
}

export function checkAligned(offset: number, clusterSize: number, what: string): void {
  if (offset % clusterSize !== 0) {
    throw new ImageFormatError(`qcow2 image is corrupt: ${what} points to unaligned offset 0x${offset.toString(16)}`);
  }
}

/** What one L2 entry (or one subcluster of an extended entry) says. */
export const KIND_UNALLOCATED = 0;
export const KIND_DATA = 1;
export const KIND_ZERO = 2;
export const KIND_COMPRESSED = 3;
export type ClusterKind = 0 | 1 | 2 | 3;

/** A compressed cluster's place in the file. */
export interface CompressedDescriptor {
  hostOffset: number;
  /** Bytes to read: up to the end of the last sector the descriptor names. */
  length: number;
}

export function decodeCompressed(hi: number, lo: number, clusterBits: number): CompressedDescriptor {
  const x = 62 - (clusterBits - 8);
  const shift = x - 32; // The sector count lives entirely in the high word.
  const descHi = hi & 0x3fffffff;
  const offsetHi = descHi & ((1 << shift) - 1);
  const sectors = descHi >>> shift;
  if (offsetHi >= 2 ** 21) throw new ImageFormatError('qcow2 image is corrupt: compressed cluster offset is too large');
  const hostOffset = offsetHi * TWO_32 + (lo >>> 0);
  return { hostOffset, length: (sectors + 1) * 512 - (hostOffset % 512) };
}

/** Writes a compressed cluster descriptor (COPIED clear) for `length` bytes at `hostOffset`. */
export function setCompressedEntry(dv: DataView, at: number, hostOffset: number, length: number, clusterBits: number): void {
  const x = 62 - (clusterBits - 8);
  const sectors = Math.floor((hostOffset + length - 1) / 512) - Math.floor(hostOffset / 512);
  const hi = Math.floor(hostOffset / TWO_32);
  const lo = hostOffset - hi * TWO_32;
  dv.setUint32(at, (COMPRESSED_HI | (sectors << (x - 32)) | hi) >>> 0);
  dv.setUint32(at + 4, lo >>> 0);
}

/** Decoded standard or compressed L2 entry (bitmap included for extended L2). */
export interface L2Entry {
  kind: ClusterKind;
  /** Host cluster offset for standard clusters (0 if none). */
  hostOffset: number;
  copied: boolean;
  compressed: CompressedDescriptor | null;
  /** Extended L2 only: allocation and zero bitmaps (else 0). */
  allocMask: number;
  zeroMask: number;
}

export interface L2Geometry {
  clusterBits: number;
  /** 2 ** clusterBits. */
  clusterSize: number;
  extendedL2: boolean;
  /** Version 3 images have the zero flag. */
  zeroFlag: boolean;
}

/**
 * Decodes entry `index` of an L2 table. For extended L2 entries `kind` describes
 * the whole cluster only for compressed clusters; callers use subclusterKind().
 * `where` names the table in error messages (a function: built only for one).
 */
export function readL2Entry(dv: DataView, index: number, g: L2Geometry, where: string | (() => string)): L2Entry {
  const at = index * (g.extendedL2 ? 16 : 8);
  const hi = dv.getUint32(at);
  const lo = dv.getUint32(at + 4);
  const copied = (hi & COPIED_HI) !== 0;
  if (hi & COMPRESSED_HI) {
    return { kind: KIND_COMPRESSED, hostOffset: 0, copied: false, compressed: decodeCompressed(hi, lo, g.clusterBits), allocMask: 0, zeroMask: 0 };
  }
  const hostOffset = entryOffset(hi, lo);
  if (hostOffset % g.clusterSize !== 0) checkAligned(hostOffset, g.clusterSize, `${named(where)} L2 entry ${index}`);
  if (g.extendedL2) {
    const zeroMask = dv.getUint32(at + 8);
    const allocMask = dv.getUint32(at + 12);
    if (allocMask !== 0 && hostOffset === 0) {
      throw new ImageFormatError(`qcow2 image is corrupt: ${named(where)} L2 entry ${index} has allocated subclusters but no host offset`);
    }
    return { kind: hostOffset ? KIND_DATA : KIND_UNALLOCATED, hostOffset, copied, compressed: null, allocMask, zeroMask };
  }
  if (g.zeroFlag && lo & ZERO_LO) return { kind: KIND_ZERO, hostOffset, copied, compressed: null, allocMask: 0, zeroMask: 0 };
  if (hostOffset === 0) {
    if (copied) throw new ImageFormatError(`qcow2 image is corrupt: ${named(where)} L2 entry ${index} has COPIED set but no offset`);
    return { kind: KIND_UNALLOCATED, hostOffset: 0, copied: false, compressed: null, allocMask: 0, zeroMask: 0 };
  }
  return { kind: KIND_DATA, hostOffset, copied, compressed: null, allocMask: 0, zeroMask: 0 };
}

function named(where: string | (() => string)): string {
  return typeof where === 'string' ? where : where();
}

/** Kind of subcluster `sc` of an extended L2 entry. */
export function subclusterKind(e: L2Entry, sc: number): ClusterKind {
  if (e.kind === KIND_COMPRESSED) return KIND_COMPRESSED;
  const bit = 1 << sc;
  if (e.allocMask & bit) return KIND_DATA;
  if (e.zeroMask & bit) return KIND_ZERO;
  return KIND_UNALLOCATED;
}

/** Writes an L2 entry (bitmap included for extended L2). */
export function writeL2Entry(
  dv: DataView,
  index: number,
  g: L2Geometry,
  hostOffset: number,
  copied: boolean,
  opts: { zero?: boolean; allocMask?: number; zeroMask?: number } = {},
): void {
  const at = index * (g.extendedL2 ? 16 : 8);
  setEntry(dv, at, hostOffset, copied, !g.extendedL2 && (opts.zero ?? false));
  if (g.extendedL2) {
    dv.setUint32(at + 8, (opts.zeroMask ?? 0) >>> 0);
    dv.setUint32(at + 12, (opts.allocMask ?? 0) >>> 0);
  }
}

/** Mask of subclusters first..last inclusive. */
export function subclusterMask(first: number, last: number): number {
  const count = last - first + 1;
  return (count >= 32 ? ALL_SUBCLUSTERS : ((1 << count) - 1) << first) >>> 0;
}
