/**
 * qcow2 consistency check and repair, as QEMU's qcow2_check_refcounts does it,
 * read straight from the image file (no caches of an open image in between).
 *
 * Check: every cluster's reference count is recomputed from what points at it —
 * the header cluster, the active L1 table and its L2 tables and data clusters
 * (compressed clusters count every cluster their 512-byte sectors touch), each
 * snapshot's L1/L2 tree, the snapshot table, the refcount table and its blocks,
 * the bitmap directory and bitmap tables — and compared with the stored
 * refcounts. A stored count above the computed one is a leak, below it an error
 * (0 for a referenced cluster means the refcount structure must be rebuilt).
 * Then the OFLAG_COPIED bits of the active tables must say "refcount is 1".
 * Every finding is one stderr line worded as qemu-img 7.2 words it; the counts
 * (corruptions, leaks, check errors, fixed ones, fragmentation) go to the
 * caller, which prints the summary.
 *
 * Repair (-r leaks / -r all): leaks are freed and raised refcounts raised in the
 * stored refcount blocks; with "all", unaligned preallocated zero clusters are
 * turned into plain zero clusters, refcount blocks outside the file get the file
 * grown, and when refcounts cannot be fixed in place the whole refcount
 * structure is rebuilt (writeRefcountStructure) and the header switched to it
 * in one write; the old structure is then freed as a leak. OFLAG_COPIED is
 * repaired last. A fully repaired image has its dirty and corrupt bits cleared.
 *
 * The building blocks (L1/L2 entry decoding, stored refcount access, the
 * refcount structure writer, header commit) are exported for the other
 * whole-image metadata operations (snapshots, amend, lazy-refcount repair).
 * Limits: refcounts above 2^53 (64-bit refcounts) are compared as doubles.
 */
import { ImageFormatError } from '../../node.js';
import type { ProtocolNode } from '../../protocols/protocol.js';
import {
  INCOMPAT_CORRUPT,
  INCOMPAT_DIRTY,
  AUTOCLEAR_BITMAPS,
  MAX_L1_BYTES,
  type Qcow2Header,
  clusterSizeOf,
  hasExtendedL2,
  l2EntriesOf,
  l2EntryBytesOf,
  readQcow2Header,
  serializeQcow2Header,
} from './header.js';
import { ALL_SUBCLUSTERS, COMPRESSED_HI, COPIED_HI, ZERO_LO, decodeCompressed, entryOffset } from './entries.js';
import { getRefcountEntry, setRefcountEntry } from './refcounts.js';
import { readSnapshotTable, serializeSnapshotTable, type SnapshotEntry } from './snapshot-table.js';

// ---------------------------------------------------------------------------
// Table entries, decoded from two 32-bit halves (no BigInt on the walk).

const TWO32 = 2 ** 32;

function hex64(hi: number, lo: number): string {
  return hi === 0 ? (lo >>> 0).toString(16) : (hi >>> 0).toString(16) + (lo >>> 0).toString(16).padStart(8, '0');
}

const L1_RESERVED_HI = 0x7f000000;
const L1_RESERVED_LO = 0x1ff;
const L2_STD_RESERVED_HI = 0x3f000000;
const L2_STD_RESERVED_LO = 0x1fe;

export type ClusterType = 'unallocated' | 'zero-plain' | 'zero-alloc' | 'normal' | 'compressed';

export interface L2EntryFields {
  hi: number;
  lo: number;
  /** Subcluster bitmap halves (extended L2 only; 0 otherwise). */
  allocBits: number;
  zeroBits: number;
  type: ClusterType;
  /** Host offset (standard clusters) or compressed data offset. */
  offset: number;
  /** Compressed clusters: bytes from `offset` the compressed data may occupy. */
  compressedBytes: number;
}

/** Decodes L2 entry `index` of `table` (qcow2_get_cluster_type's rules). */
export function decodeL2Entry(h: Qcow2Header, table: DataView, index: number): L2EntryFields {
  const at = index * l2EntryBytesOf(h);
  const hi = table.getUint32(at);
  const lo = table.getUint32(at + 4);
  const extended = hasExtendedL2(h);
  const allocBits = extended ? table.getUint32(at + 12) : 0;
  const zeroBits = extended ? table.getUint32(at + 8) : 0;
  const e: L2EntryFields = { hi, lo, allocBits, zeroBits, type: 'unallocated', offset: 0, compressedBytes: 0 };
  if (hi & COMPRESSED_HI) {
    e.type = 'compressed';
    try {
      const c = decodeCompressed(hi, lo, h.clusterBits);
      e.offset = c.hostOffset;
      e.compressedBytes = c.length;
    } catch {
      // An offset beyond what QEMU can address: counted as a reference past the end.
      e.offset = Number.MAX_SAFE_INTEGER - 2 * clusterSizeOf(h);
      e.compressedBytes = 512;
    }
    return e;
  }
  e.offset = entryOffset(hi, lo);
  if ((lo & ZERO_LO) && !extended) e.type = e.offset ? 'zero-alloc' : 'zero-plain';
  else e.type = e.offset ? 'normal' : 'unallocated';
  return e;
}

/** Writes the first 64 bits of L2 entry `index` of `table`. */
export function setL2EntryWord(h: Qcow2Header, table: DataView, index: number, hi: number, lo: number): void {
  const at = index * l2EntryBytesOf(h);
  table.setUint32(at, hi >>> 0);
  table.setUint32(at + 4, lo >>> 0);
}

export interface L1Entry {
  hi: number;
  lo: number;
  l2Offset: number;
}

export async function readL1Table(file: ProtocolNode, offset: number, entries: number, pastEnd: PastEnd = 'strict'): Promise<L1Entry[]> {
  const buf = await readBytes(file, offset, entries * 8, pastEnd);
  const view = new DataView(buf.buffer);
  const out: L1Entry[] = [];
  for (let i = 0; i < entries; i++) {
    const hi = view.getUint32(i * 8);
    const lo = view.getUint32(i * 8 + 4);
    out.push({ hi, lo, l2Offset: entryOffset(hi, lo) });
  }
  return out;
}

export function encodeL1Table(entries: readonly L1Entry[]): Uint8Array {
  const out = new Uint8Array(entries.length * 8);
  const view = new DataView(out.buffer);
  entries.forEach((e, i) => {
    view.setUint32(i * 8, e.hi >>> 0);
    view.setUint32(i * 8 + 4, e.lo >>> 0);
  });
  return out;
}

/**
 * How metadata reads treat the end of the file: changes refuse to work from
 * tables past it ('strict', an error naming the range); the check reads them
 * as zeroes, as QEMU's block layer does, and reports the references instead.
 */
export type PastEnd = 'strict' | 'zeroes';

/** Largest single metadata read (QEMU's largest tables: 32 MiB L1, 64 MiB snapshot table). */
const MAX_METADATA_READ = 64 * 2 ** 20;

/** Reads `length` bytes of metadata at `offset`. */
export async function readBytes(file: ProtocolNode, offset: number, length: number, pastEnd: PastEnd = 'strict'): Promise<Uint8Array> {
  if (length > MAX_METADATA_READ) throw new ImageFormatError(`metadata table of ${length} bytes at offset ${offset} is too large`);
  const buf = new Uint8Array(length);
  const inFile = Math.max(0, Math.min(length, file.size() - offset));
  if (inFile < length && pastEnd === 'strict') {
    throw new ImageFormatError(`read of ${length} bytes at offset ${offset} is past the end of the file (${file.size()} bytes)`);
  }
  if (inFile > 0) await file.read(offset, buf.subarray(0, inFile));
  return buf;
}

/** Largest refcount `order` can hold (2^53 - 1 stands in for 64-bit widths). */
export function refcountMax(order: number): number {
  return order >= 6 ? Number.MAX_SAFE_INTEGER : 2 ** (2 ** order) - 1;
}

/** A DataView over exactly `bytes` (refcount blocks are read as Uint8Arrays here). */
function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Refcounts stored in the image: refcount table + blocks, read on demand, writable in place. */
export class StoredRefcounts {
  readonly entriesPerBlock: number;
  private readonly blocks = new Map<number, Uint8Array>();

  private constructor(
    private readonly file: ProtocolNode,
    private readonly h: Qcow2Header,
    /** Raw refcount table entries as [hi, lo] pairs. */
    readonly table: Array<[number, number]>,
    private readonly pastEnd: PastEnd,
  ) {
    this.entriesPerBlock = (clusterSizeOf(h) * 8) / 2 ** h.refcountOrder;
  }

  static async load(file: ProtocolNode, h: Qcow2Header, pastEnd: PastEnd = 'strict'): Promise<StoredRefcounts> {
    const buf = await readBytes(file, h.refcountTableOffset, h.refcountTableClusters * clusterSizeOf(h), pastEnd);
    const view = new DataView(buf.buffer);
    const table: Array<[number, number]> = [];
    for (let i = 0; i < buf.length / 8; i++) table.push([view.getUint32(i * 8), view.getUint32(i * 8 + 4)]);
    return new StoredRefcounts(file, h, table, pastEnd);
  }

  /** Offset of refcount block `i` (0: none); reserved/unaligned entries count as none. */
  blockOffset(i: number): number {
    const e = this.table[i];
    if (!e || (e[1] & 0x1ff) !== 0) return 0;
    return (e[0] >>> 0) * TWO32 + ((e[1] & 0xfffffe00) >>> 0);
  }

  private async block(i: number): Promise<Uint8Array | null> {
    const offset = this.blockOffset(i);
    if (offset === 0) return null;
    let b = this.blocks.get(i);
    if (!b) {
      b = await readBytes(this.file, offset, clusterSizeOf(this.h), this.pastEnd);
      this.blocks.set(i, b);
    }
    return b;
  }

  /** Refcount block `i` as stored (null: none), read once and cached. */
  async blockBytes(i: number): Promise<Uint8Array | null> {
    return this.block(i);
  }

  async get(cluster: number): Promise<number> {
    const b = await this.block(Math.floor(cluster / this.entriesPerBlock));
    return b ? getRefcountEntry(viewOf(b), cluster % this.entriesPerBlock, 2 ** this.h.refcountOrder) : 0;
  }

  /** Sets a refcount in its (existing) block and writes the block's changed sector. */
  async set(cluster: number, value: number): Promise<void> {
    const bi = Math.floor(cluster / this.entriesPerBlock);
    const b = await this.block(bi);
    if (!b) throw new ImageFormatError(`cluster ${cluster} has no refcount block`);
    const index = cluster % this.entriesPerBlock;
    setRefcountEntry(viewOf(b), index, 2 ** this.h.refcountOrder, value);
    const byte = Math.floor((index * 2 ** this.h.refcountOrder) / 8);
    const sector = byte - (byte % 512);
    await this.file.write(this.blockOffset(bi) + sector, b.subarray(sector, Math.min(b.length, sector + 512)));
  }
}

// ---------------------------------------------------------------------------
// Computed references.

/** Reference counts computed from the metadata, growing as references past the end appear. */
export class ReferenceCounts {
  private data: Float64Array;
  private size: number;

  constructor(clusters: number, private readonly max: number) {
    this.size = clusters;
    this.data = new Float64Array(Math.max(clusters, 1));
  }

  /** Clusters covered: the file's, or up to the highest one referenced. */
  get length(): number {
    return this.size;
  }

  get(cluster: number): number {
    return cluster < this.size ? this.data[cluster]! : 0;
  }

  set(cluster: number, value: number): void {
    this.ensure(cluster);
    this.data[cluster] = value;
  }

  private ensure(cluster: number): void {
    if (cluster < this.size) return;
    if (cluster >= this.data.length) {
      const grown = new Float64Array(Math.max(cluster + 1, this.data.length * 2));
      grown.set(this.data);
      this.data = grown;
    }
    this.size = cluster + 1;
  }

  /**
   * Counts one reference to every cluster [offset, offset+bytes) touches;
   * returns the offsets of clusters whose count would overflow (left unchanged).
   */
  add(offset: number, bytes: number, clusterBits: number): number[] {
    const overflow: number[] = [];
    if (bytes <= 0) return overflow;
    const first = Math.floor(offset / 2 ** clusterBits);
    const last = Math.floor((offset + bytes - 1) / 2 ** clusterBits);
    for (let c = first; c <= last; c++) {
      this.ensure(c);
      if (this.data[c]! >= this.max) overflow.push(c * 2 ** clusterBits);
      else this.data[c]! += 1;
    }
    return overflow;
  }
}

// ---------------------------------------------------------------------------
// The check itself.

export interface CheckCounts {
  checkErrors: number;
  corruptions: number;
  leaks: number;
  corruptionsFixed: number;
  leaksFixed: number;
  imageEndOffset: number;
  totalClusters: number;
  allocatedClusters: number;
  fragmentedClusters: number;
  compressedClusters: number;
}

export interface RepairMode {
  leaks: boolean;
  errors: boolean;
}

const NO_REPAIR: RepairMode = { leaks: false, errors: false };

function emptyCounts(): CheckCounts {
  return {
    checkErrors: 0, corruptions: 0, leaks: 0, corruptionsFixed: 0, leaksFixed: 0, imageEndOffset: 0,
    totalClusters: 0, allocatedClusters: 0, fragmentedClusters: 0, compressedClusters: 0,
  };
}

/** Everything one pass of the check works on. */
interface Pass {
  file: ProtocolNode;
  h: Qcow2Header;
  snapshots: SnapshotEntry[];
  snapshotTableBytes: number;
  refs: ReferenceCounts;
  res: CheckCounts;
  fix: RepairMode;
  log: (line: string) => void;
  rebuild: boolean;
}

function addRefs(p: Pass, offset: number, bytes: number): void {
  if (bytes <= 0) return;
  // The last cluster may be partly past the end of the file, but no more than that.
  if (offset + bytes - p.file.size() >= clusterSizeOf(p.h)) {
    p.log(`ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x${offset.toString(16)} size 0x${bytes.toString(16)}`);
    p.res.corruptions++;
    return;
  }
  for (const at of p.refs.add(offset, bytes, p.h.clusterBits)) {
    p.log(`ERROR: overflow cluster offset=0x${at.toString(16)}`);
    p.log('Use qemu-img amend to increase the refcount entry width or qemu-img convert to create a clean copy if the image cannot be opened for writing');
    p.res.corruptions++;
  }
}

async function checkL2(p: Pass, l2Offset: number, fragInfo: boolean): Promise<void> {
  const h = p.h;
  const clusterSize = clusterSizeOf(h);
  let buf: Uint8Array;
  try {
    buf = await readBytes(p.file, l2Offset, clusterSize, 'zeroes');
  } catch {
    p.log('ERROR: I/O error in check_refcounts_l2');
    p.res.checkErrors++;
    return;
  }
  const view = new DataView(buf.buffer);
  let dirty = false;
  let nextContiguous = 0;
  for (let i = 0; i < l2EntriesOf(h); i++) {
    const e = decodeL2Entry(h, view, i);
    if (e.type !== 'compressed' && ((e.hi & L2_STD_RESERVED_HI) || (e.lo & L2_STD_RESERVED_LO))) {
      p.log(`ERROR found l2 entry with reserved bits set: ${hex64(e.hi, e.lo)}`);
      p.res.corruptions++;
    }
    switch (e.type) {
      case 'compressed':
        if (e.hi & COPIED_HI) {
          p.log(`ERROR: coffset=0x${e.offset.toString(16)}: copied flag must never be set for compressed clusters`);
          p.res.corruptions++;
        }
        if (e.allocBits || e.zeroBits) {
          p.log(`ERROR compressed cluster ${i} with non-zero subcluster allocation bitmap, entry=0x${hex64(e.hi, e.lo)}`);
          p.res.corruptions++;
          break;
        }
        addRefs(p, e.offset, e.compressedBytes);
        if (fragInfo) {
          p.res.allocatedClusters++;
          p.res.compressedClusters++;
          p.res.fragmentedClusters++;
        }
        break;
      case 'zero-alloc':
      case 'normal': {
        if (e.zeroBits & e.allocBits) {
          p.res.corruptions++;
          p.log(`ERROR offset=${e.offset.toString(16)}: Allocated cluster has corrupted subcluster allocation bitmap`);
        }
        if (e.offset % clusterSize !== 0) {
          p.res.corruptions++;
          const hasData = hasExtendedL2(h) ? e.allocBits !== 0 : e.type === 'normal';
          if (!hasData) {
            p.log(`${p.fix.errors ? 'Repairing' : 'ERROR'} offset=${e.offset.toString(16)}: Preallocated cluster is not properly aligned; L2 entry corrupted.`);
            if (p.fix.errors) {
              // A plain zero cluster: no host cluster, reads as zeroes.
              if (hasExtendedL2(h)) {
                setL2EntryWord(h, view, i, 0, 0);
                view.setUint32(i * 16 + 8, ALL_SUBCLUSTERS);
                view.setUint32(i * 16 + 12, 0);
              } else setL2EntryWord(h, view, i, 0, ZERO_LO);
              dirty = true;
              p.res.corruptions--;
              p.res.corruptionsFixed++;
              continue;
            }
          } else {
            p.log(`ERROR offset=${e.offset.toString(16)}: Data cluster is not properly aligned; L2 entry corrupted.`);
          }
        }
        if (fragInfo) {
          p.res.allocatedClusters++;
          if (nextContiguous && e.offset !== nextContiguous) p.res.fragmentedClusters++;
          nextContiguous = e.offset + clusterSize;
        }
        addRefs(p, e.offset, clusterSize);
        break;
      }
      case 'zero-plain':
        break;
      case 'unallocated':
        if (e.allocBits) {
          p.res.corruptions++;
          p.log('ERROR: Unallocated cluster has non-zero subcluster allocation map');
        }
        break;
    }
  }
  if (dirty) await p.file.write(l2Offset, buf);
}

async function checkL1(p: Pass, l1Offset: number, l1Size: number, fragInfo: boolean): Promise<void> {
  if (l1Size === 0) return;
  addRefs(p, l1Offset, l1Size * 8);
  let l1: L1Entry[];
  try {
    l1 = await readL1Table(p.file, l1Offset, l1Size, 'zeroes');
  } catch {
    p.log('ERROR: I/O error in check_refcounts_l1');
    p.res.checkErrors++;
    return;
  }
  for (const e of l1) {
    if (e.hi === 0 && e.lo === 0) continue;
    if ((e.hi & L1_RESERVED_HI) || (e.lo & L1_RESERVED_LO)) {
      p.log(`ERROR found L1 entry with reserved bits set: ${hex64(e.hi, e.lo)}`);
      p.res.corruptions++;
    }
    const clusterSize = clusterSizeOf(p.h);
    addRefs(p, e.l2Offset, clusterSize);
    if (e.l2Offset % clusterSize !== 0) {
      p.log(`ERROR l2_offset=${e.l2Offset.toString(16)}: Table is not cluster aligned; L1 entry corrupted`);
      p.res.corruptions++;
    }
    await checkL2(p, e.l2Offset, fragInfo);
  }
}

async function checkBitmaps(p: Pass): Promise<void> {
  const b = p.h.bitmaps;
  if (!b || (p.h.autoclearFeatures & AUTOCLEAR_BITMAPS) === 0n) return;
  addRefs(p, b.directoryOffset, b.directorySize);
  let dir: Uint8Array;
  try {
    dir = await readBytes(p.file, b.directoryOffset, b.directorySize, 'zeroes');
  } catch {
    p.log('ERROR: could not read the bitmap directory');
    p.res.checkErrors++;
    return;
  }
  const view = new DataView(dir.buffer);
  let at = 0;
  for (let n = 0; n < b.nbBitmaps && at + 24 <= dir.length; n++) {
    const tableOffset = view.getUint32(at) * TWO32 + view.getUint32(at + 4);
    const tableSize = view.getUint32(at + 8);
    addRefs(p, tableOffset, tableSize * 8);
    try {
      const table = new DataView((await readBytes(p.file, tableOffset, tableSize * 8, 'zeroes')).buffer);
      for (let i = 0; i < tableSize; i++) {
        const off = entryOffset(table.getUint32(i * 8), table.getUint32(i * 8 + 4));
        if (off) addRefs(p, off, clusterSizeOf(p.h));
      }
    } catch {
      p.log(`ERROR: could not read the table of bitmap ${n}`);
      p.res.checkErrors++;
    }
    const nameSize = view.getUint16(at + 18);
    const extra = view.getUint32(at + 20);
    at += Math.ceil((24 + extra + nameSize) / 8) * 8;
  }
}

async function checkRefblocks(p: Pass, stored: StoredRefcounts): Promise<void> {
  const clusterSize = clusterSizeOf(p.h);
  for (let i = 0; i < stored.table.length; i++) {
    const [hi, lo] = stored.table[i]!;
    if (lo & 0x1ff) {
      p.log(`ERROR refcount table entry ${i} has reserved bits set`);
      p.res.corruptions++;
      p.rebuild = true;
      continue;
    }
    const offset = stored.blockOffset(i);
    if (offset === 0 && hi === 0) continue;
    const cluster = Math.floor(offset / clusterSize);
    if (cluster >= p.refs.length) {
      p.res.corruptions++;
      p.log(`${p.fix.errors ? 'Repairing' : 'ERROR'} refcount block ${i} is outside image`);
      if (p.fix.errors) {
        try {
          await p.file.truncate(offset + clusterSize);
          p.res.corruptions--;
          p.res.corruptionsFixed++;
          addRefs(p, offset, clusterSize);
        } catch (e) {
          p.rebuild = true;
          p.log(`ERROR could not resize image: ${(e as Error).message}`);
        }
      }
      continue;
    }
    addRefs(p, offset, clusterSize);
    if (p.refs.get(cluster) !== 1) {
      p.log(`ERROR refcount block ${i} refcount=${p.refs.get(cluster)}`);
      p.res.corruptions++;
      p.rebuild = true;
    }
  }
}

/** QEMU's calculate_refcounts: every reference the metadata makes. */
async function calculateRefcounts(p: Pass, stored: StoredRefcounts): Promise<void> {
  const clusterSize = clusterSizeOf(p.h);
  addRefs(p, 0, clusterSize);
  await checkL1(p, p.h.l1TableOffset, p.h.l1Size, true);
  for (const sn of p.snapshots) {
    if (sn.l1Offset % clusterSize !== 0) {
      p.log(`ERROR snapshot ${sn.id} (${sn.name}) l1_offset=0x${sn.l1Offset.toString(16)}: L1 table is not cluster aligned; snapshot table entry corrupted`);
      p.res.corruptions++;
      continue;
    }
    if (sn.l1Size * 8 > MAX_L1_BYTES) {
      p.log(`ERROR snapshot ${sn.id} (${sn.name}) l1_size=0x${sn.l1Size.toString(16)}: L1 table is too large; snapshot table entry corrupted`);
      p.res.corruptions++;
      continue;
    }
    await checkL1(p, sn.l1Offset, sn.l1Size, false);
  }
  addRefs(p, p.h.snapshotsOffset, p.snapshotTableBytes);
  addRefs(p, p.h.refcountTableOffset, p.h.refcountTableClusters * clusterSize);
  await checkBitmaps(p);
  await checkRefblocks(p, stored);
}

/** QEMU's compare_refcounts; returns the highest cluster in use. */
async function compareRefcounts(p: Pass, stored: StoredRefcounts, fix: RepairMode): Promise<number> {
  let highest = 0;
  for (let i = 0; i < p.refs.length; i++) {
    let refcount: number;
    try {
      refcount = await stored.get(i);
    } catch (e) {
      p.log(`Can't get refcount for cluster ${i}: ${(e as Error).message}`);
      p.res.checkErrors++;
      continue;
    }
    const reference = p.refs.get(i);
    if (refcount > 0 || reference > 0) highest = i;
    if (refcount === reference) continue;
    let fixed: 'leaksFixed' | 'corruptionsFixed' | null = null;
    if (refcount === 0) p.rebuild = true;
    else if (refcount > reference && fix.leaks) fixed = 'leaksFixed';
    else if (refcount < reference && fix.errors) fixed = 'corruptionsFixed';
    const label = fixed ? 'Repairing' : refcount < reference ? 'ERROR' : 'Leaked';
    p.log(`${label} cluster ${i} refcount=${refcount} reference=${reference}`);
    if (fixed) {
      try {
        await stored.set(i, reference);
        p.res[fixed]++;
        continue;
      } catch (e) {
        p.log(`ERROR could not fix the refcount of cluster ${i}: ${(e as Error).message}`);
      }
    }
    if (refcount < reference) p.res.corruptions++;
    else p.res.leaks++;
  }
  return highest;
}

/** QEMU's check_oflag_copied: active L1/L2 COPIED bits must match refcount == 1. */
async function checkOflagCopied(p: Pass, stored: StoredRefcounts): Promise<void> {
  const h = p.h;
  const repair = p.fix.errors || (p.fix.leaks && !p.res.checkErrors && !p.res.corruptions && !p.res.leaks);
  let l1: L1Entry[];
  try {
    l1 = await readL1Table(p.file, h.l1TableOffset, h.l1Size, 'zeroes');
  } catch {
    return; // Already reported by the reference scan.
  }
  const clusterSize = clusterSizeOf(h);
  for (let i = 0; i < l1.length; i++) {
    const e = l1[i]!;
    if (!e.l2Offset) continue;
    let refcount: number;
    try {
      refcount = await stored.get(Math.floor(e.l2Offset / clusterSize));
    } catch {
      continue;
    }
    if ((refcount === 1) !== ((e.hi & COPIED_HI) !== 0)) {
      p.res.corruptions++;
      p.log(`${repair ? 'Repairing' : 'ERROR'} OFLAG_COPIED L2 cluster: l1_index=${i} l1_entry=${hex64(e.hi, e.lo)} refcount=${refcount}`);
      if (repair) {
        const hi = refcount === 1 ? (e.hi | COPIED_HI) >>> 0 : e.hi & ~COPIED_HI;
        await p.file.write(h.l1TableOffset + i * 8, encodeL1Table([{ hi, lo: e.lo, l2Offset: e.l2Offset }]));
        p.res.corruptions--;
        p.res.corruptionsFixed++;
      }
    }
    let buf: Uint8Array;
    try {
      buf = await readBytes(p.file, e.l2Offset, clusterSize, 'zeroes');
    } catch (err) {
      p.log(`ERROR: Could not read L2 table: ${(err as Error).message}`);
      p.res.checkErrors++;
      return;
    }
    const view = new DataView(buf.buffer);
    let dirty = 0;
    for (let j = 0; j < l2EntriesOf(h); j++) {
      const l2 = decodeL2Entry(h, view, j);
      if (l2.type !== 'normal' && l2.type !== 'zero-alloc') continue;
      let rc: number;
      try {
        rc = await stored.get(Math.floor(l2.offset / clusterSize));
      } catch {
        continue;
      }
      if ((rc === 1) !== ((l2.hi & COPIED_HI) !== 0)) {
        p.res.corruptions++;
        p.log(`${repair ? 'Repairing' : 'ERROR'} OFLAG_COPIED data cluster: l2_entry=${hex64(l2.hi, l2.lo)} refcount=${rc}`);
        if (repair) {
          setL2EntryWord(h, view, j, rc === 1 ? (l2.hi | COPIED_HI) >>> 0 : l2.hi & ~COPIED_HI, l2.lo);
          dirty++;
        }
      }
    }
    if (dirty > 0) {
      await p.file.write(e.l2Offset, buf);
      p.res.corruptions -= dirty;
      p.res.corruptionsFixed += dirty;
    }
  }
}

/**
 * The image's snapshot table; incomplete entries (version 3 without the disk
 * size in their extra data) are findings, counted apart and repaired after the
 * refcounts by rewriting the table, as QEMU's check does.
 */
async function loadSnapshots(p: Pass): Promise<number> {
  if (p.h.nbSnapshots === 0) return 0;
  try {
    const t = await readSnapshotTable(
      (o, n) => readBytes(p.file, o, n, 'zeroes'), p.h.snapshotsOffset, p.h.nbSnapshots,
      { version: p.h.version, virtualSize: p.h.size },
    );
    p.snapshots = t.entries;
    p.snapshotTableBytes = t.byteLength;
    for (const w of t.warnings) p.log(`${p.fix.errors ? 'Repairing' : 'ERROR'} ${w.message}`);
    return t.warnings.length;
  } catch (e) {
    p.log(`ERROR snapshot table: ${(e as Error).message}`);
    p.res.checkErrors++;
    return 0;
  }
}

/** Rewrites the snapshot table with complete entries; returns how many entries were fixed. */
async function fixSnapshotTable(p: Pass, incomplete: number): Promise<number> {
  if (!p.fix.errors || incomplete === 0 || p.res.corruptions > 0 || p.res.checkErrors > 0) return 0;
  const table = serializeSnapshotTable(p.snapshots);
  if (table.length !== p.snapshotTableBytes) {
    // Entries grow when their extra data is completed: the table moves to new clusters.
    p.h = await relocateSnapshotTable(p, table);
  } else {
    await p.file.write(p.h.snapshotsOffset, table);
  }
  return incomplete;
}

async function relocateSnapshotTable(p: Pass, table: Uint8Array): Promise<Qcow2Header> {
  const clusterSize = clusterSizeOf(p.h);
  const stored = await StoredRefcounts.load(p.file, p.h);
  const refs = await loadStoredRefcounts(p.file, p.h, stored);
  const isFreeBefore = (c: number) => refs.get(c) === 0;
  const clusters = Math.ceil(table.length / clusterSize);
  const first = allocateRun(isFreeBefore, clusters);
  const padded = new Uint8Array(clusters * clusterSize);
  padded.set(table);
  await p.file.writeGrow(first * clusterSize, padded);
  refs.add(first * clusterSize, padded.length, p.h.clusterBits);
  releaseRange(refs, p.h, p.h.snapshotsOffset, p.snapshotTableBytes);
  releaseRange(refs, p.h, p.h.refcountTableOffset, p.h.refcountTableClusters * clusterSize);
  for (let i = 0; i < stored.table.length; i++) releaseRange(refs, p.h, stored.blockOffset(i), clusterSize);
  return installRefcounts(p.file, { ...p.h, snapshotsOffset: first * clusterSize }, refs, isFreeBefore);
}

/** All stored refcounts of the clusters in the file, as a ReferenceCounts array. */
export async function loadStoredRefcounts(file: ProtocolNode, h: Qcow2Header, stored: StoredRefcounts): Promise<ReferenceCounts> {
  const clusters = Math.ceil(file.size() / clusterSizeOf(h));
  const refs = new ReferenceCounts(clusters, refcountMax(6));
  const per = stored.entriesPerBlock;
  for (let bi = 0; bi * per < clusters; bi++) {
    const block = await stored.blockBytes(bi);
    if (!block) continue;
    const view = viewOf(block);
    for (let k = 0; k < per && bi * per + k < clusters; k++) refs.set(bi * per + k, getRefcountEntry(view, k, 2 ** h.refcountOrder));
  }
  return refs;
}

/** Drops one reference from every cluster of [offset, offset+bytes) (none below 0). */
export function releaseRange(refs: ReferenceCounts, h: Qcow2Header, offset: number, bytes: number): void {
  if (bytes <= 0 || offset <= 0) return;
  const first = Math.floor(offset / clusterSizeOf(h));
  const last = Math.floor((offset + bytes - 1) / clusterSizeOf(h));
  for (let c = first; c <= last && c < refs.length; c++) refs.set(c, Math.max(0, refs.get(c) - 1));
}

/**
 * First cluster of a run of `n` clusters that `isFree` says are free, searching
 * from cluster 1 upwards (`isFree` must hold everywhere past some point).
 */
export function allocateRun(isFree: (cluster: number) => boolean, n: number): number {
  let run = 0;
  for (let c = 1; ; c++) {
    run = isFree(c) ? run + 1 : 0;
    if (run === n) return c - n + 1;
  }
}

// ---------------------------------------------------------------------------
// Writing a whole refcount structure.

export interface RefcountStructure {
  tableOffset: number;
  tableClusters: number;
}

/**
 * Writes a complete new refcount structure (blocks + table) for `refs`, in
 * clusters `isFree` allows (and past the end of the file), accounting for its
 * own clusters, with `h.refcountOrder` as the width. Only blocks that hold a
 * non-zero refcount are written. Nothing the current header points at is
 * touched: the caller switches to the result by committing a header.
 */
export async function writeRefcountStructure(
  file: ProtocolNode,
  h: Qcow2Header,
  refs: ReferenceCounts,
  isFree: (cluster: number) => boolean,
): Promise<RefcountStructure> {
  const clusterSize = clusterSizeOf(h);
  const perBlock = (clusterSize * 8) / 2 ** h.refcountOrder;
  const max = refcountMax(h.refcountOrder);
  const taken = new Set<number>();
  const free = (c: number) => !taken.has(c) && refs.get(c) === 0 && isFree(c);

  const blockOf = new Map<number, number>();
  let tableClusters = 0;
  let tableOffset = 0;
  // Allocating blocks and the table can create new used clusters in uncovered
  // ranges, so iterate until every used cluster's range has a block and the
  // table is big enough for all blocks.
  for (;;) {
    let changed = false;
    const used: number[] = [];
    for (let c = 0; c < refs.length; c++) if (refs.get(c) > 0) used.push(c);
    for (const c of taken) used.push(c);
    for (const c of used) {
      const bi = Math.floor(c / perBlock);
      if (!blockOf.has(bi)) {
        const at = allocateRun(free, 1);
        taken.add(at);
        blockOf.set(bi, at);
        changed = true;
      }
    }
    let maxBlock = 0;
    for (const bi of blockOf.keys()) maxBlock = Math.max(maxBlock, bi);
    const neededTable = Math.max(1, Math.ceil(((maxBlock + 1) * 8) / clusterSize));
    if (neededTable > tableClusters) {
      for (let c = 0; c < tableClusters; c++) taken.delete(tableOffset / clusterSize + c);
      const first = allocateRun(free, neededTable);
      for (let c = 0; c < neededTable; c++) taken.add(first + c);
      tableOffset = first * clusterSize;
      tableClusters = neededTable;
      changed = true;
    }
    if (!changed) break;
  }

  const table = new Uint8Array(tableClusters * clusterSize);
  const tview = new DataView(table.buffer);
  for (const [bi, cluster] of [...blockOf].sort((a, b) => a[0] - b[0])) {
    const block = new Uint8Array(clusterSize);
    const view = viewOf(block);
    for (let k = 0; k < perBlock; k++) {
      const c = bi * perBlock + k;
      const v = refs.get(c) + (taken.has(c) ? 1 : 0);
      if (v > max) throw new ImageFormatError(`refcount of cluster ${c} (${v}) does not fit in ${2 ** h.refcountOrder} bits`);
      if (v) setRefcountEntry(view, k, 2 ** h.refcountOrder, v);
    }
    await file.writeGrow(cluster * clusterSize, block);
    const off = cluster * clusterSize;
    tview.setUint32(bi * 8, Math.floor(off / TWO32));
    tview.setUint32(bi * 8 + 4, off % TWO32);
  }
  await file.writeGrow(tableOffset, table);
  await file.flush();
  return { tableOffset, tableClusters };
}

/** Writes the header cluster (one write: the switch point of every metadata transaction). */
export async function commitHeader(file: ProtocolNode, h: Qcow2Header): Promise<void> {
  await file.flush();
  await file.write(0, serializeQcow2Header(h));
  await file.flush();
}

/**
 * Writes `refs` as the image's refcount structure and commits the header `h`
 * pointing at it. The old structure's clusters are expected to be 0 in `refs`
 * (they become free); `isFree` keeps live clusters of the old state untouched.
 */
export async function installRefcounts(
  file: ProtocolNode,
  h: Qcow2Header,
  refs: ReferenceCounts,
  isFree: (cluster: number) => boolean,
): Promise<Qcow2Header> {
  const s = await writeRefcountStructure(file, h, refs, isFree);
  const committed = { ...h, refcountTableOffset: s.tableOffset, refcountTableClusters: s.tableClusters };
  await commitHeader(file, committed);
  return committed;
}

// ---------------------------------------------------------------------------

export interface Qcow2CheckOptions {
  fix?: RepairMode;
  /** One line of findings (qemu-img prints them on stderr). */
  log?: (line: string) => void;
}

/** QEMU's qcow2_check_refcounts pass: fills `p.res`, repairs per `p.fix`. */
async function checkRefcounts(p: Pass): Promise<void> {
  const clusterSize = clusterSizeOf(p.h);
  p.res.totalClusters = Math.ceil(p.h.size / clusterSize);
  let stored: StoredRefcounts;
  try {
    stored = await StoredRefcounts.load(p.file, p.h, 'zeroes');
  } catch (e) {
    p.log(`ERROR could not read the refcount table: ${(e as Error).message}`);
    p.res.checkErrors++;
    return;
  }
  await calculateRefcounts(p, stored);
  const before = { ...p.res };
  let highest = await compareRefcounts(p, stored, NO_REPAIR);

  if (p.rebuild && p.fix.errors) {
    const old = { ...p.res };
    p.log('Rebuilding refcount structure');
    // The old structure stays referenced in `refs`: it is freed below as a leak.
    p.h = await installRefcounts(p.file, p.h, p.refs, () => true);
    p.res.corruptions = 0;
    p.res.leaks = 0;
    p.rebuild = false;
    p.refs = new ReferenceCounts(Math.ceil(p.file.size() / clusterSize), refcountMax(p.h.refcountOrder));
    stored = await StoredRefcounts.load(p.file, p.h, 'zeroes');
    await calculateRefcounts(p, stored);
    const saved = { ...p.res };
    let freshLeaks = 0;
    if (p.fix.leaks) {
      p.res = emptyCounts();
      highest = await compareRefcounts(p, stored, { leaks: true, errors: false });
      if (p.rebuild) p.log('ERROR rebuilt refcount structure is still broken');
      freshLeaks = p.res.leaks;
      p.res = saved;
    }
    if (p.res.corruptions < old.corruptions) p.res.corruptionsFixed += old.corruptions - p.res.corruptions;
    if (p.res.leaks < old.leaks) p.res.leaksFixed += old.leaks - p.res.leaks;
    p.res.leaks += freshLeaks;
  } else if (p.fix.leaks || p.fix.errors) {
    if (p.rebuild) {
      p.log('ERROR need to rebuild refcount structures');
      p.res.checkErrors++;
      return;
    }
    if (p.res.leaks || p.res.corruptions) {
      p.res = before;
      highest = await compareRefcounts(p, stored, p.fix);
    }
  }
  await checkOflagCopied(p, stored);
  p.res.imageEndOffset = (highest + 1) * clusterSize;
}

/**
 * Checks (and with `fix`, repairs) the qcow2 image in `file` — opened
 * read-write when repairing. Returns qemu-img's counts.
 */
export async function checkQcow2(file: ProtocolNode, opts: Qcow2CheckOptions = {}): Promise<CheckCounts> {
  const fix = opts.fix ?? NO_REPAIR;
  const log = opts.log ?? (() => {});
  const h = await readQcow2Header(file, { forCheck: true }).catch((e: Error) => {
    throw new ImageFormatError(`Could not open '${file.filename}': ${e.message}`);
  });
  const clusterSize = clusterSizeOf(h);
  const p: Pass = {
    file, h, snapshots: [], snapshotTableBytes: 0,
    refs: new ReferenceCounts(Math.ceil(file.size() / clusterSize), refcountMax(h.refcountOrder)),
    res: emptyCounts(), fix, log, rebuild: false,
  };
  const incomplete = await loadSnapshots(p);
  await checkRefcounts(p);
  const fixed = await fixSnapshotTable(p, incomplete);
  p.res.corruptions += incomplete - fixed;
  p.res.corruptionsFixed += fixed;
  if ((fix.leaks || fix.errors) && p.res.checkErrors === 0 && p.res.corruptions === 0) {
    const flags = p.h.incompatibleFeatures & ~(INCOMPAT_DIRTY | INCOMPAT_CORRUPT);
    if (flags !== p.h.incompatibleFeatures) await commitHeader(file, { ...p.h, incompatibleFeatures: flags });
  }
  return p.res;
}

/**
 * Repairs a dirty image (lazy refcounts left refcounts behind) the way QEMU
 * does when it opens one read-write: a full repair, which clears the dirty bit.
 * Call before building any caches over the image; throws if it cannot be made
 * consistent.
 */
export async function repairDirtyQcow2(file: ProtocolNode): Promise<CheckCounts> {
  const res = await checkQcow2(file, { fix: { leaks: true, errors: true } });
  if (res.corruptions > 0 || res.checkErrors > 0) {
    throw new ImageFormatError(`${file.filename}: the dirty image could not be repaired (${res.corruptions} corruptions left)`);
  }
  return res;
}
