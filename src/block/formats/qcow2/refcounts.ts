/**
 * qcow2 host cluster management (docs/interop/qcow2.txt, "Host cluster
 * management"): the refcount table, refcount blocks of refcount_bits-wide
 * entries (1..64 bits; sub-byte entries start at the least significant bit),
 * cluster allocation and freeing.
 *
 * - The refcount table is held in memory; refcount blocks go through a
 *   TableCache. A missing block (table entry 0) means "all refcounts 0".
 * - allocateClusters(n) finds n contiguous free clusters from a hint (clusters
 *   past the end of the file are free), creates the refcount blocks they need
 *   (a new block is placed at the first cluster it describes, so it describes
 *   itself), grows the refcount table when it is too short, sets refcount 1.
 * - Write-through mode (the default, no lazy refcounts): changed blocks are
 *   written by commit() before the caller lets any table reference the new
 *   clusters. Lazy mode defers block writes to flush(); the image's dirty bit
 *   covers the gap.
 * - Frees are deferred: queueFree() records them, applyPendingFrees() (called by
 *   the owner after the tables that dropped the references are on disk)
 *   decrements. A crash in between leaks clusters, never double-uses them.
 * - Growing the refcount table writes new blocks and the new table in a fresh
 *   area past every used cluster, with refcounts for that area, then switches
 *   the header to it; the old table is freed afterwards.
 * - Compressed clusters are packed: allocateBytes() hands out byte ranges back to
 *   back, across cluster boundaries when the next cluster is free, raising each
 *   touched cluster's refcount once per piece.
 */
import { ImageFormatError } from '../../node.js';
import type { ProtocolNode } from '../../protocols/protocol.js';
import type { Qcow2Header } from './header.js';
import { type CachedTable, TableCache } from './table-cache.js';

const TWO_32 = 4294967296;

export interface RefcountOwner {
  readonly file: ProtocolNode;
  readonly header: Qcow2Header;
  /** Writes the header (and syncs it to disk). */
  writeHeader(): Promise<void>;
}

export class Refcounts {
  readonly clusterSize: number;
  readonly refcountBits: number;
  /** Refcount entries per block. */
  readonly entriesPerBlock: number;
  readonly maxRefcount: number;
  private readonly cache: TableCache;
  /** Offsets of refcount blocks (0: none). */
  private table: number[];
  /** The refcount blocks' offsets, for overlap checks. */
  private readonly blocks = new Set<number>();
  private freeHint = 0;
  /** First cluster index past everything allocated in this session and the file's end. */
  private highWater: number;
  private pendingFrees: Array<[cluster: number, count: number]> = [];
  /** Zero bytes as long as a refcount block, for native compares. */
  private readonly zeroBlock: Uint8Array;
  private compressedNext = 0;

  private constructor(private readonly owner: RefcountOwner, table: number[], private writeThrough: boolean) {
    const h = owner.header;
    this.clusterSize = 2 ** h.clusterBits;
    this.refcountBits = 2 ** h.refcountOrder;
    this.entriesPerBlock = (this.clusterSize * 8) / this.refcountBits;
    this.maxRefcount = this.refcountBits >= 53 ? Number.MAX_SAFE_INTEGER : 2 ** this.refcountBits - 1;
    this.cache = new TableCache(owner.file, this.clusterSize, Math.max(8, (4 << 20) / this.clusterSize), 'refcount block');
    this.zeroBlock = new Uint8Array(this.clusterSize);
    this.table = table;
    for (let i = 0; i < table.length; i++) if (table[i] !== 0) this.blocks.add(table[i]!);
    this.highWater = Math.ceil(owner.file.size() / this.clusterSize);
  }

  /** Reads the refcount table named by the header. */
  static async load(owner: RefcountOwner, writeThrough: boolean): Promise<Refcounts> {
    const h = owner.header;
    const clusterSize = 2 ** h.clusterBits;
    const bytes = new Uint8Array(h.refcountTableClusters * clusterSize);
    await owner.file.read(h.refcountTableOffset, bytes);
    const dv = new DataView(bytes.buffer);
    const entries = bytes.length / 8;
    // Entries past the last used one are zero: found by native compares, not decoded one by one.
    const used = Math.ceil(usedLength(bytes) / 8);
    const table: number[] = new Array<number>(entries).fill(0);
    for (let i = 0; i < used; i++) {
      const hi = dv.getUint32(i * 8);
      const lo = dv.getUint32(i * 8 + 4);
      if (hi >= 2 ** 21) throw new ImageFormatError(`qcow2 refcount table entry ${i} is too large`);
      const offset = hi * TWO_32 + lo;
      if (offset % clusterSize !== 0) {
        throw new ImageFormatError(`qcow2 image is corrupt: refcount block offset 0x${offset.toString(16)} (table entry ${i}) is unaligned`);
      }
      if (offset !== 0 && offset < clusterSize) {
        throw new ImageFormatError(`qcow2 image is corrupt: refcount block (table entry ${i}) overlaps the header`);
      }
      table[i] = offset;
    }
    return new Refcounts(owner, table, writeThrough);
  }

  /** Lazy refcounts on/off (off = write-through). */
  setWriteThrough(on: boolean): void {
    this.writeThrough = on;
  }

  get tableEntries(): number {
    return this.table.length;
  }

  /** Is there a refcount block at host `offset`? */
  isRefcountBlock(offset: number): boolean {
    return this.blocks.has(offset);
  }

  /** Offset of refcount block `index` of the table (0: none). */
  blockOffset(index: number): number {
    return this.table[index] ?? 0;
  }

  private async block(cluster: number): Promise<CachedTable | null> {
    const offset = this.table[Math.floor(cluster / this.entriesPerBlock)] ?? 0;
    return offset === 0 ? null : this.cache.get(offset);
  }

  private readEntry(t: CachedTable, index: number): number {
    const value = getRefcountEntry(t.view, index, this.refcountBits);
    if (value > this.maxRefcount) throw new ImageFormatError('qcow2 refcount is too large');
    return value;
  }

  private writeEntry(t: CachedTable, index: number, value: number): void {
    const [from, to] = setRefcountEntry(t.view, index, this.refcountBits, value);
    this.cache.markDirty(t, from, to);
  }

  /** Refcount of the cluster containing host offset `offset`. */
  async get(offset: number): Promise<number> {
    const cluster = Math.floor(offset / this.clusterSize);
    const t = await this.block(cluster);
    return t ? this.readEntry(t, cluster % this.entriesPerBlock) : 0;
  }

  /** Sets the refcount of the cluster containing `offset`, creating its refcount block if needed. */
  async set(offset: number, value: number): Promise<void> {
    if (!Number.isSafeInteger(value) || value < 0 || value > this.maxRefcount) {
      // Not corruption: the image is fine, the operation needs wider refcounts.
      throw new RangeError(
        `qcow2 refcount ${value} for cluster at 0x${offset.toString(16)} does not fit in ${this.refcountBits} bits`,
      );
    }
    const cluster = Math.floor(offset / this.clusterSize);
    let t = await this.block(cluster);
    if (!t) {
      if (value === 0) return;
      // Rare (allocation creates blocks itself): a block whose range has none
      // describes only free clusters, so its first cluster can hold it.
      const index = Math.floor(cluster / this.entriesPerBlock);
      await this.createBlock(index, index * this.entriesPerBlock);
      t = (await this.block(cluster))!;
    }
    this.writeEntry(t, cluster % this.entriesPerBlock, value);
  }

  /** Adds `delta` to the refcount of the cluster containing `offset`. */
  async adjust(offset: number, delta: number): Promise<number> {
    const value = (await this.get(offset)) + delta;
    if (value < 0) {
      throw new ImageFormatError(`qcow2 image is corrupt: refcount of cluster at 0x${offset.toString(16)} would drop below 0`);
    }
    await this.set(offset, value);
    if (value === 0) this.freeHint = Math.min(this.freeHint, Math.floor(offset / this.clusterSize));
    return value;
  }

  /**
   * Creates refcount block `index` at the free cluster `at` (growing the table
   * first if needed). The cluster that holds the block is counted by the block
   * covering `at`: the new one itself, or one that exists.
   */
  private async createBlock(index: number, at: number): Promise<void> {
    if (index >= this.table.length) await this.growTable(index);
    if (this.table[index] !== 0) return;
    const offset = at * this.clusterSize;
    const t = await this.cache.create(offset, new Uint8Array(this.clusterSize));
    this.table[index] = offset;
    this.blocks.add(offset);
    const holder = await this.block(at);
    if (!holder) throw new ImageFormatError(`qcow2: no refcount block covers cluster ${at}`);
    this.writeEntry(holder, at % this.entriesPerBlock, 1);
    await this.cache.writeTable(t);
    await this.cache.writeTable(holder);
    await this.writeTableEntry(index, offset);
    this.highWater = Math.max(this.highWater, at + 1);
  }

  private async writeTableEntry(index: number, offset: number): Promise<void> {
    this.table[index] = offset;
    const buf = new Uint8Array(8);
    new DataView(buf.buffer).setBigUint64(0, BigInt(offset));
    await this.owner.file.writeGrow(this.owner.header.refcountTableOffset + index * 8, buf);
  }

  /** Are clusters [first, first+count) all free? Returns the first used one, or -1. */
  private async firstUsed(first: number, count: number): Promise<number> {
    let c = first;
    const end = first + count;
    while (c < end) {
      const blockIndex = Math.floor(c / this.entriesPerBlock);
      const blockEnd = Math.min(end, (blockIndex + 1) * this.entriesPerBlock);
      const offset = this.table[blockIndex] ?? 0;
      if (offset !== 0) {
        const t = this.cache.peek(offset) ?? (await this.cache.get(offset));
        const base = blockIndex * this.entriesPerBlock;
        // A stretch of zero entries (fresh space) is seen by one native compare, not entry by entry.
        if (!this.allZero(t, c - base, blockEnd - base)) {
          for (; c < blockEnd; c++) if (this.readEntry(t, c % this.entriesPerBlock) !== 0) return c;
        }
      }
      c = blockEnd;
    }
    return -1;
  }

  /** Are entries [from, to) of block `t` all zero? (Whole-byte entry widths only; narrower ones say false.) */
  private allZero(t: CachedTable, from: number, to: number): boolean {
    if (this.refcountBits < 8) return false;
    const bytes = this.refcountBits / 8;
    return Buffer.compare(t.data.subarray(from * bytes, to * bytes), this.zeroBlock.subarray(0, (to - from) * bytes)) === 0;
  }

  /** Sets the refcounts of clusters [first, first+count), all covered by existing blocks, to 1. */
  private async setAllocated(first: number, count: number): Promise<void> {
    const end = first + count;
    for (let c = first; c < end;) {
      const blockIndex = Math.floor(c / this.entriesPerBlock);
      const blockEnd = Math.min(end, (blockIndex + 1) * this.entriesPerBlock);
      const offset = this.table[blockIndex]!;
      const t = this.cache.peek(offset) ?? (await this.cache.get(offset));
      const base = blockIndex * this.entriesPerBlock;
      for (let i = c - base; i < blockEnd - base; i++) storeRefcountEntry(t.view, i, this.refcountBits, 1);
      this.cache.markDirty(t, Math.floor(((c - base) * this.refcountBits) / 8), Math.ceil(((blockEnd - base) * this.refcountBits) / 8));
      c = blockEnd;
    }
  }

  /**
   * Allocates `count` contiguous clusters with refcount 1; returns the first
   * one's offset. Unless `commit` is false the changed refcount blocks are
   * written now; with false the caller guarantees they are written (commit())
   * before anything on disk references the clusters.
   */
  async allocateClusters(count: number, opts: { commit: boolean } = { commit: true }): Promise<number> {
    let start = this.freeHint;
    for (;;) {
      const used = await this.firstUsed(start, count);
      if (used >= 0) {
        if (used === this.freeHint) this.freeHint = used + 1;
        start = used + 1;
        continue;
      }
      // The run is free: the lowest refcount block it lacks goes in the run's
      // first cluster (so runs stay contiguous), then the search starts over.
      const lastIndex = Math.floor((start + count - 1) / this.entriesPerBlock);
      let missing = -1;
      for (let i = Math.floor(start / this.entriesPerBlock); i <= lastIndex && missing < 0; i++) {
        if (i >= this.table.length || this.table[i] === 0) missing = i;
      }
      if (missing >= 0) {
        await this.createBlock(missing, start);
        continue;
      }
      await this.setAllocated(start, count);
      if (start === this.freeHint) this.freeHint = start + count;
      this.highWater = Math.max(this.highWater, start + count);
      if (opts.commit) await this.commit();
      return start * this.clusterSize;
    }
  }

  /**
   * Allocates `size` (less than one cluster) bytes for compressed data, packed
   * right after the previous piece as QEMU packs them: in the rest of that
   * piece's cluster, or on into the next cluster when that is the one allocated
   * next (a piece then straddles the two). Every cluster the piece touches gains
   * one reference. As with allocateClusters(n, { commit: false }), the caller has
   * the refcounts written (commit(), or the L2 cache's write hook) before anything
   * on disk references the bytes.
   */
  async allocateBytes(size: number): Promise<number> {
    const cs = this.clusterSize;
    let offset = this.compressedNext;
    if (offset !== 0 && (await this.get(offset)) >= this.maxRefcount) offset = 0;
    const freeInCluster = cs - (offset % cs);
    if (offset !== 0 && size <= freeInCluster) {
      await this.adjust(offset, 1);
    } else {
      const fresh = await this.allocateClusters(1, { commit: false });
      if (offset !== 0 && fresh === offset + freeInCluster) await this.adjust(offset, 1);
      else offset = fresh;
    }
    this.compressedNext = (offset + size) % cs === 0 ? 0 : offset + size;
    return offset;
  }

  /** Writes changed refcount blocks now, unless refcounts are lazy. */
  async commit(): Promise<void> {
    if (this.writeThrough) await this.cache.flushAll();
  }

  /** Writes every changed refcount block. */
  async flush(): Promise<boolean> {
    return this.cache.flushAll();
  }

  /** Records that the clusters overlapping [offset, offset+length) each lose one reference, later. */
  queueFree(offset: number, length: number): void {
    const first = Math.floor(offset / this.clusterSize);
    const last = Math.floor((offset + length - 1) / this.clusterSize);
    this.pendingFrees.push([first, last - first + 1]);
  }

  hasPendingFrees(): boolean {
    return this.pendingFrees.length > 0;
  }

  /**
   * Applies the queued frees; `onFreed` hears each cluster whose refcount reaches
   * 0 (the owner drops cached tables there). Changed blocks are left for flush().
   */
  async applyPendingFrees(onFreed: (offset: number) => void): Promise<void> {
    const frees = this.pendingFrees;
    this.pendingFrees = [];
    this.compressedNext = 0;
    for (const [first, count] of frees) {
      for (let c = first; c < first + count; c++) {
        const offset = c * this.clusterSize;
        if ((await this.adjust(offset, -1)) === 0) onFreed(offset);
      }
    }
  }

  /** How many of clusters [0, clusters) have a non-zero refcount, counting no further than `stopAt`. */
  async countInUse(clusters: number, stopAt: number): Promise<number> {
    let counted = 0;
    for (let i = 0; i * this.entriesPerBlock < clusters && counted < stopAt; i++) {
      const offset = this.table[i] ?? 0;
      if (offset === 0) continue;
      const t = await this.cache.get(offset);
      const n = Math.min(this.entriesPerBlock, clusters - i * this.entriesPerBlock);
      for (let j = 0; j < n && counted < stopAt; j++) if (this.readEntry(t, j) !== 0) counted++;
    }
    return counted;
  }

  /** One past the highest cluster with a non-zero refcount (for shrinking the file). */
  async endOfUsedClusters(): Promise<number> {
    for (let i = this.table.length - 1; i >= 0; i--) {
      const offset = this.table[i]!;
      if (offset === 0) continue;
      const t = await this.cache.get(offset);
      for (let j = this.entriesPerBlock - 1; j >= 0; j--) {
        if (this.readEntry(t, j) !== 0) return (i * this.entriesPerBlock + j + 1) * this.clusterSize;
      }
    }
    return 0;
  }

  /**
   * Grows the refcount table to cover block `needIndex`: new blocks and the new
   * table go into a free area past everything used, with their own refcounts set,
   * and the header switches to the new table once it is on disk.
   */
  private async growTable(needIndex: number): Promise<void> {
    const E = this.entriesPerBlock;
    const perCluster = this.clusterSize / 8;
    const h = this.owner.header;
    let region = Math.max(this.highWater, Math.ceil(this.owner.file.size() / this.clusterSize));
    let entries = Math.max(needIndex + 1, Math.ceil((this.table.length * 3) / 2));
    let tableClusters = 0;
    let missing: number[] = [];
    for (;;) {
      tableClusters = Math.ceil(entries / perCluster);
      let settled = false;
      while (!settled) {
        const end = region + missing.length + tableClusters;
        const next: number[] = [];
        for (let i = Math.floor(region / E); i <= Math.floor((end - 1) / E); i++) {
          if (i >= this.table.length || this.table[i] === 0) next.push(i);
        }
        settled = next.length === missing.length;
        missing = next;
      }
      const size = missing.length + tableClusters;
      const used = await this.firstUsed(region, size);
      if (used >= 0) { region = used + 1; missing = []; continue; }
      const lastIndex = Math.floor((region + size - 1) / E);
      if (lastIndex < entries) break;
      entries = lastIndex + 1;
      missing = [];
    }
    if (tableClusters * this.clusterSize > 8 * 2 ** 20) {
      throw new ImageFormatError('qcow2 refcount table would exceed its 8 MiB limit');
    }

    const newTable = this.table.slice();
    while (newTable.length < tableClusters * perCluster) newTable.push(0);
    const newBlocks: CachedTable[] = [];
    for (let k = 0; k < missing.length; k++) {
      const offset = (region + k) * this.clusterSize;
      newTable[missing[k]!] = offset;
      this.blocks.add(offset);
      newBlocks.push(await this.cache.create(offset, new Uint8Array(this.clusterSize)));
    }
    const tableStart = region + missing.length;
    const touched = new Set<CachedTable>(newBlocks);
    for (let c = region; c < tableStart + tableClusters; c++) {
      const t = await this.cache.get(newTable[Math.floor(c / E)]!);
      this.writeEntry(t, c % E, 1);
      touched.add(t);
    }
    for (const t of touched) await this.cache.writeTable(t);
    const bytes = new Uint8Array(tableClusters * this.clusterSize);
    const dv = new DataView(bytes.buffer);
    newTable.forEach((o, i) => dv.setBigUint64(i * 8, BigInt(o)));
    await this.owner.file.writeGrow(tableStart * this.clusterSize, bytes);
    await this.owner.file.flush();

    const oldOffset = h.refcountTableOffset;
    const oldClusters = h.refcountTableClusters;
    h.refcountTableOffset = tableStart * this.clusterSize;
    h.refcountTableClusters = tableClusters;
    this.table = newTable;
    await this.owner.writeHeader();
    this.highWater = Math.max(this.highWater, tableStart + tableClusters);
    this.queueFree(oldOffset, oldClusters * this.clusterSize);
  }

  /** Forgets a cached block (after the owner rewrote refcount structures itself). */
  dropCached(offset: number): void {
    this.cache.drop(offset);
  }
}

/**
 * Entry `index` of a refcount block of `bits`-wide entries (64-bit entries past
 * 2^53 come back rounded: callers that need exact counts reject them).
 */
export function getRefcountEntry(view: DataView, index: number, bits: number): number {
  if (bits === 16) return view.getUint16(index * 2);
  if (bits === 8) return view.getUint8(index);
  if (bits === 32) return view.getUint32(index * 4);
  if (bits === 64) return view.getUint32(index * 8) * TWO_32 + view.getUint32(index * 8 + 4);
  const bit = index * bits;
  return (view.getUint8(bit >> 3) >> (bit & 7)) & ((1 << bits) - 1);
}

/** Sets entry `index` of a refcount block; returns the byte range it changed. */
export function setRefcountEntry(view: DataView, index: number, bits: number, value: number): [number, number] {
  storeRefcountEntry(view, index, bits, value);
  return [Math.floor((index * bits) / 8), Math.ceil(((index + 1) * bits) / 8)];
}

/** Sets entry `index` of a refcount block. */
function storeRefcountEntry(view: DataView, index: number, bits: number, value: number): void {
  if (bits === 16) view.setUint16(index * 2, value);
  else if (bits === 8) view.setUint8(index, value);
  else if (bits === 32) view.setUint32(index * 4, value);
  else if (bits === 64) {
    const hi = Math.floor(value / TWO_32);
    view.setUint32(index * 8, hi);
    view.setUint32(index * 8 + 4, value - hi * TWO_32);
  } else {
    const bit = index * bits;
    const byte = bit >> 3;
    const mask = ((1 << bits) - 1) << (bit & 7);
    view.setUint8(byte, (view.getUint8(byte) & ~mask) | ((value << (bit & 7)) & mask));
  }
}

/** Length of `bytes` up to its last non-zero byte (0 when all are zero). */
export function usedLength(bytes: Uint8Array): number {
  const zero = new Uint8Array(4096);
  let end = bytes.length;
  while (end > 0) {
    const from = Math.max(0, end - zero.length);
    if (Buffer.compare(bytes.subarray(from, end), zero.subarray(0, end - from)) !== 0) break;
    end = from;
  }
  while (end > 0 && bytes[end - 1] === 0) end--;
  return end;
}
