/**
 * Reading and patching qcow2 metadata in a byte buffer, for tests that build
 * damaged images from valid ones. Field offsets follow QEMU's public
 * docs/interop/qcow2.txt (all integers big-endian): the header, the L1 table
 * (entries: L2 offset in bits 9-55, bit 63 "copied"), L2 entries (bit 62
 * "compressed"; for compressed clusters a descriptor whose low
 * 62-(cluster_bits-8) bits are the host offset) and the refcount table.
 * No validation here on purpose: these helpers exist to write wrong values.
 */

/** Byte offsets of the header fields. */
export const HEADER = {
  magic: 0,
  version: 4,
  backingFileOffset: 8,
  backingFileSize: 16,
  clusterBits: 20,
  size: 24,
  cryptMethod: 32,
  l1Size: 36,
  l1TableOffset: 40,
  refcountTableOffset: 48,
  refcountTableClusters: 56,
  nbSnapshots: 60,
  snapshotsOffset: 64,
  incompatibleFeatures: 72,
  compatibleFeatures: 80,
  autoclearFeatures: 88,
  refcountOrder: 96,
  headerLength: 100,
} as const;

export const OFFSET_MASK = 0x00ff_ffff_ffff_fe00n;
export const COPIED = 1n << 63n;
export const COMPRESSED = 1n << 62n;

export interface Qcow2Layout {
  version: number;
  clusterBits: number;
  clusterSize: number;
  size: bigint;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  refcountOrder: number;
}

function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

export function getU32(buf: Uint8Array, at: number): number {
  return view(buf).getUint32(at);
}
export function setU32(buf: Uint8Array, at: number, v: number): void {
  view(buf).setUint32(at, v >>> 0);
}
export function getU64(buf: Uint8Array, at: number): bigint {
  return view(buf).getBigUint64(at);
}
export function setU64(buf: Uint8Array, at: number, v: bigint): void {
  view(buf).setBigUint64(at, BigInt.asUintN(64, v));
}

export function readLayout(buf: Uint8Array): Qcow2Layout {
  const version = getU32(buf, HEADER.version);
  const clusterBits = getU32(buf, HEADER.clusterBits);
  return {
    version,
    clusterBits,
    clusterSize: 2 ** clusterBits,
    size: getU64(buf, HEADER.size),
    l1Size: getU32(buf, HEADER.l1Size),
    l1TableOffset: Number(getU64(buf, HEADER.l1TableOffset)),
    refcountTableOffset: Number(getU64(buf, HEADER.refcountTableOffset)),
    refcountTableClusters: getU32(buf, HEADER.refcountTableClusters),
    nbSnapshots: getU32(buf, HEADER.nbSnapshots),
    snapshotsOffset: Number(getU64(buf, HEADER.snapshotsOffset)),
    refcountOrder: version >= 3 ? getU32(buf, HEADER.refcountOrder) : 4,
  };
}

/** Byte position of L1 entry `i`. */
export function l1EntryAt(l: Qcow2Layout, i: number): number {
  return l.l1TableOffset + 8 * i;
}

/** Byte position of the L2 entry for guest cluster `guestCluster` (its L2 table must exist). */
export function l2EntryAt(buf: Uint8Array, l: Qcow2Layout, guestCluster: number): number {
  const entryBytes = 8; // standard L2 entries (no extended_l2 in the fixtures that use this)
  const perTable = l.clusterSize / entryBytes;
  const l1 = getU64(buf, l1EntryAt(l, Math.floor(guestCluster / perTable)));
  const table = Number(l1 & OFFSET_MASK);
  if (table === 0) throw new Error(`guest cluster ${guestCluster} has no L2 table`);
  return table + entryBytes * (guestCluster % perTable);
}

/** Bit position where a compressed descriptor's sector count starts. */
export function compressedOffsetBits(l: Qcow2Layout): number {
  return 62 - (l.clusterBits - 8);
}
