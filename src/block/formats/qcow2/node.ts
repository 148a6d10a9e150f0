/**
 * Qcow2Node: an opened qcow2 image (docs/interop/qcow2.txt) as a block node.
 *
 * Reading maps guest offsets through an L1 table (the active one, or a
 * snapshot's for Qcow2SnapshotView) and cached L2 tables into runs of one kind: data (read from the host cluster), zero, compressed
 * (decompressed a cluster at a time) or unallocated (read from the backing
 * node, zeroes past its end or without one). Extended L2 images map at
 * subcluster granularity (32 per cluster).
 *
 * Writing keeps QEMU's crash-safety order:
 * 1. clusters are allocated with refcount 1 and, unless refcounts are lazy,
 *    their refcount blocks are written before anything references them;
 * 2. guest data is written into the new (or COPIED, i.e. refcount 1) cluster;
 * 3. only then is the L2 entry changed (in the L2 cache; new L2 tables are
 *    written at once, before the L1 entry that points to them);
 * 4. clusters that lose a reference are freed only in flush(), after the L2
 *    tables and L1 that dropped them are on disk.
 * flush() writes refcount blocks, then L2 tables, syncs, applies the frees,
 * writes refcount blocks again and syncs. A killed process leaves at most leaks.
 * Clusters whose entry lacks COPIED (shared with internal snapshots, or
 * compressed) are never written in place: they are copied on write.
 *
 * Lazy refcounts (version 3): the first change sets the header's dirty bit and
 * refcount blocks are written only in flush(); close() clears the bit once
 * everything is on disk. An image marked corrupt opens read-only only; a dirty
 * one is repaired (check.ts rebuilds its refcounts) when opened read-write.
 *
 * Concurrency: reads share an RwLock; metadata changes hold it alone. A
 * guest write runs in three steps: under the lock it maps its clusters
 * (allocating fresh ones, refcount raised in the cache); outside the lock its
 * data goes to the host clusters (one request per run of consecutive host
 * clusters); under the lock again the L2 entries are set. writeRuns() takes
 * several ranges through the same three steps as one write. Reads map their
 * clusters first and then read the data clusters, those that follow each other
 * in the file with one request (readRuns() maps several ranges that way).
 * Writes whose guest clusters overlap an unfinished write wait for it; every
 * other change (zeroing, discard, compressed writes, resize, snapshots, close)
 * first waits until no write is in flight. Refcount blocks changed by data
 * allocations are written before any L2 table (the L2 cache's write hook), not
 * once per allocation.
 *
 * Chain operations (ChainHooks of ops/chain.ts) are methods that delegate to
 * their modules: setBackingFile (backing.ts), makeEmpty (make-empty.ts) and
 * openSnapshot (snapshot-view.ts). Persistent bitmaps are read once at open
 * (bitmaps.ts) and listed by formatSpecific().
 *
 * Synchronous reads (readCachedSync, for a guest's disk): a range that maps to
 * one run through cached L2 tables is read before the call returns, with no
 * lock, promise or buffer of its own: data through the file's readCachedSync
 * (page-cache hits only), zero runs filled, unallocated runs through the
 * backing node's readCachedSync (zeroes without one or past its end). It is
 * taken only while the lock is free (nobody changing metadata holds it or
 * waits for it: a read that ran now would see what an async read queued now
 * would see) or the node is read-only; anything else (compressed clusters, an
 * uncached L2 table, several runs, a backing node ending inside the range,
 * bytes not cached, corrupt entries) is declined and the caller uses read().
 *
 * Internal state API (for snapshots, check and amend, which live in their own
 * modules): header + writeHeader(), l1Entry()/setL1Entry()/replaceActiveL1(),
 * l2Table()/markL2Dirty(), refcounts (get/set/adjust/allocateClusters/
 * queueFree/applyPendingFrees), snapshots, and flushMetadata().
 */
import type { BlockExtent, BlockNode, Preallocation, TruncateOptions, WriteOptions, ZeroOptions } from '../../node.js';
import { BlockRequestError, ImageFormatError, checkRange } from '../../node.js';
import type { ProtocolNode } from '../../protocols/protocol.js';
import { decompressCluster, withCompressedClusters } from '../../compress/index.js';
import type { FormatSpecificInfo, ImageNode, OpenContext, SnapshotInfo } from '../format.js';
import {
  COMPAT_LAZY_REFCOUNTS,
  INCOMPAT_CORRUPT,
  INCOMPAT_DATA_FILE,
  INCOMPAT_DIRTY,
  type Qcow2Header,
  hasExtendedL2,
  l1EntriesFor,
  readQcow2Header,
  serializeQcow2Header,
} from './header.js';
import {
  ALL_SUBCLUSTERS,
  COPIED_HI,
  type CompressedDescriptor,
  KIND_COMPRESSED,
  KIND_DATA,
  KIND_UNALLOCATED,
  KIND_ZERO,
  type ClusterKind,
  type L2Entry,
  type L2Geometry,
  SUBCLUSTERS,
  checkAligned,
  entryOffset,
  readL2Entry,
  setCompressedEntry,
  setEntry,
  subclusterKind,
  subclusterMask,
  writeL2Entry,
} from './entries.js';
import type { ChainHooks } from '../../ops/chain.js';
import { setQcow2BackingFile } from './backing.js';
import { type Qcow2BitmapInfo, readQcow2Bitmaps, withBitmapsInfo } from './bitmaps.js';
import { repairDirtyQcow2 } from './check.js';
import { makeQcow2Empty } from './make-empty.js';
import { Refcounts, usedLength } from './refcounts.js';
import { RwLock } from './rw-lock.js';
import { type CachedTable, TableCache } from './table-cache.js';
import { type SnapshotEntry, readSnapshotTable, snapshotInfo } from './snapshot-table.js';
import { Qcow2SnapshotView } from './snapshot-view.js';

/** An L1 table to map guest offsets through: the active one or an internal snapshot's. */
export interface L1Table {
  /** Offset of the L2 table entry `index` names (0: none, or past the table's end); checked. */
  l2Offset(index: number): number;
  /** How error messages name the L2 table of entry `index`. */
  where(index: number): string;
}

/** One run of guest bytes with the same mapping. */
export interface Extent {
  kind: ClusterKind;
  length: number;
  /** Host offset of the run's first byte (data, or zero/unallocated units of a cluster that keeps an allocation). */
  hostOffset: number | null;
  compressed: CompressedDescriptor | null;
}

/** A data cluster run to read from the image file into `buf`. */
interface HostPiece {
  offset: number;
  buf: Uint8Array;
}

/** A data write mapped under the lock: host writes to do, then L2 updates to apply. */
interface WritePlan {
  writes: Array<{ host: number; data: Uint8Array }>;
  /** Run under the lock once every write is on disk. */
  updates: Array<() => Promise<void>>;
}

/** A guest write between mapping and its L2 update: [from, to) in guest clusters. */
interface InFlight {
  from: number;
  to: number;
  done: Promise<void>;
}

/** Bytes of L2 tables the cache may hold (QEMU's default L2 cache is 32 MiB at most). */
const L2_CACHE_BYTES = 32 * 2 ** 20;
const MIN_L2_CACHE_TABLES = 16;
/** How corruption errors from the metadata readers begin; QEMU's "Marking image as corrupt" report leaves it out. */
const CORRUPT_PREFIX = 'qcow2 image is corrupt: ';
const TWO_32 = 4294967296;

export class Qcow2Node implements ImageNode, ChainHooks {
  readonly driver = 'qcow2';
  backing: BlockNode | null = null;
  readonly clusterBits: number;
  readonly clusterSize: number;
  /** Entries per L2 table. */
  readonly l2Entries: number;
  readonly subclusterSize: number;
  readonly geometry: L2Geometry;
  refcounts!: Refcounts;
  /** Internal snapshots, as read from the snapshot table (snapshots.ts keeps it current). */
  snapshots: SnapshotEntry[] = [];
  /** Persistent bitmaps, read at open (after any autoclear reset, as before). */
  private bitmaps: Qcow2BitmapInfo[] = [];
  private l1: Uint8Array = new Uint8Array(0);
  private l1View = new DataView(this.l1.buffer);
  /** Offsets of the L2 tables the active L1 table points to. */
  private readonly activeL2 = new Set<number>();
  private readonly l2Cache: TableCache;
  private readonly lock = new RwLock();
  private readonly lazyRefcounts: boolean;
  private markedDirty = false;
  /** Bytes of the header cluster the header on disk spans (whole sectors). */
  private headerBytesWritten: number;
  private lastCompressed: { hostOffset: number; data: Uint8Array } | null = null;
  private readonly inFlight = new Set<InFlight>();
  private readonly activeTable: L1Table = {
    l2Offset: (index) => this.l1Entry(index).offset,
    where: (index) => this.where(index),
  };
  /** Whether block status consults the file inside data clusters (metadataPreallocated()). */
  private metadataPreallocation: boolean | null = null;
  /** Host data writes running outside the lock, and the highest host byte they reach. */
  private hostWrites = 0;
  private hostWritesEnd = 0;

  private constructor(readonly file: ProtocolNode, readonly header: Qcow2Header) {
    this.clusterBits = header.clusterBits;
    this.clusterSize = 2 ** header.clusterBits;
    const extendedL2 = hasExtendedL2(header);
    this.geometry = { clusterBits: header.clusterBits, clusterSize: this.clusterSize, extendedL2, zeroFlag: header.version >= 3 };
    this.l2Entries = this.clusterSize / (extendedL2 ? 16 : 8);
    this.subclusterSize = extendedL2 ? this.clusterSize / SUBCLUSTERS : this.clusterSize;
    // Refcount blocks go to disk before any L2 table that may reference what they count.
    this.l2Cache = new TableCache(file, this.clusterSize, Math.max(MIN_L2_CACHE_TABLES, L2_CACHE_BYTES / this.clusterSize), 'L2 table',
      () => this.refcounts.commit());
    this.lazyRefcounts = (header.compatibleFeatures & COMPAT_LAZY_REFCOUNTS) !== 0n;
    try {
      this.headerBytesWritten = usedSectors(serializeQcow2Header(header));
    } catch {
      this.headerBytesWritten = this.clusterSize; // Unrepresentable as parsed: a rewrite covers the whole cluster.
    }
  }

  static async open(file: ProtocolNode, ctx: OpenContext): Promise<Qcow2Node> {
    let header = await readQcow2Header(file);
    if (header.incompatibleFeatures & INCOMPAT_DATA_FILE) {
      throw new ImageFormatError(`${file.filename}: qcow2 images with an external data file are not supported`);
    }
    const writable = !ctx.readOnly;
    if (writable && !ctx.forRepair && header.incompatibleFeatures & INCOMPAT_CORRUPT) {
      throw new ImageFormatError(`${file.filename}: qcow2: Image is corrupt; cannot be opened read/write`);
    }
    if (writable && !ctx.forRepair && header.incompatibleFeatures & INCOMPAT_DIRTY) {
      // Lazy refcounts left stale refcounts behind: rebuild them first, as QEMU does.
      await repairDirtyQcow2(file);
      header = await readQcow2Header(file);
    }
    file.lockForFormat(true);
    const node = new Qcow2Node(file, header);
    await node.loadL1();
    node.refcounts = await Refcounts.load(node, !node.lazyRefcounts);
    if (header.nbSnapshots > 0) {
      const table = await readSnapshotTable(
        async (offset, length) => node.readFileBytes(offset, length),
        header.snapshotsOffset,
        header.nbSnapshots,
        { version: header.version, virtualSize: header.size },
      );
      node.snapshots = table.entries;
    }
    // Autoclear features name data this implementation does not keep up to date:
    // they must be cleared before the first write (qcow2.txt, autoclear_features).
    if (writable && header.autoclearFeatures !== 0n) {
      header.autoclearFeatures = 0n;
      await node.writeHeader();
    }
    node.bitmaps = await readQcow2Bitmaps(node);
    return node;
  }

  get filename(): string { return this.file.filename; }
  get readOnly(): boolean { return this.file.readOnly; }
  get granularity(): number { return this.clusterSize; }
  get backingFilename(): string | null { return this.header.backingFilename; }
  get backingFormat(): string | null { return this.header.backingFormat; }
  get dirtyFlag(): boolean { return (this.header.incompatibleFeatures & INCOMPAT_DIRTY) !== 0n; }
  get corrupt(): boolean { return (this.header.incompatibleFeatures & INCOMPAT_CORRUPT) !== 0n; }

  attachBacking(node: BlockNode | null): void {
    this.backing = node;
  }

  size(): number {
    return this.header.size;
  }

  formatSpecific(): FormatSpecificInfo {
    const h = this.header;
    if (h.version === 2) {
      return { type: 'qcow2', data: { compat: '0.10', 'compression-type': h.compressionType, 'refcount-bits': 16 } };
    }
    return withBitmapsInfo({
      type: 'qcow2',
      data: {
        compat: '1.1',
        'compression-type': h.compressionType,
        'lazy-refcounts': this.lazyRefcounts,
        'refcount-bits': 2 ** h.refcountOrder,
        corrupt: this.corrupt,
        'extended-l2': this.geometry.extendedL2,
      },
    }, this.bitmaps);
  }

  listSnapshots(): SnapshotInfo[] {
    return this.snapshots.map(snapshotInfo);
  }

  // ---------------------------------------------------------------- chain operations

  setBackingFile(name: string | null, format: string | null): Promise<void> {
    return setQcow2BackingFile(this, name, format);
  }

  makeEmpty(): Promise<void> {
    return makeQcow2Empty(this);
  }

  openSnapshot(which: { id?: string; name?: string }): Promise<BlockNode> {
    return Qcow2SnapshotView.open(this, which);
  }

  // ---------------------------------------------------------------- state API

  /** Writes the header (first cluster) and syncs it. */
  async writeHeader(): Promise<void> {
    const bytes = serializeQcow2Header(this.header);
    const used = usedSectors(bytes);
    // Also cover what the previous header used, so no stale tail survives.
    await this.file.writeGrow(0, bytes.subarray(0, Math.max(this.headerBytesWritten, used)));
    this.headerBytesWritten = used;
    await this.file.flush();
  }

  private async loadL1(): Promise<void> {
    const h = this.header;
    this.l1 = await this.readFileBytes(h.l1TableOffset, h.l1Size * 8);
    this.l1View = new DataView(this.l1.buffer, this.l1.byteOffset, this.l1.byteLength);
    this.activeL2.clear();
    for (let i = 0; i < h.l1Size; i++) {
      const offset = entryOffset(this.l1View.getUint32(i * 8), this.l1View.getUint32(i * 8 + 4));
      if (offset !== 0) this.activeL2.add(offset);
    }
  }

  /**
   * Guest data written into an existing host cluster must not land on metadata
   * (a hostile or damaged L2 entry can point anywhere): QEMU's overlap check.
   */
  private checkOverlap(host: number, length: number): void {
    const h = this.header;
    const cs = this.clusterSize;
    const inside = (start: number, bytes: number, c: number): boolean => c >= start && c < start + bytes;
    for (let c = Math.floor(host / cs) * cs; c < host + length; c += cs) {
      let what: string | null = null;
      if (c < cs) what = 'the header';
      else if (inside(h.l1TableOffset, h.l1Size * 8, c)) what = 'the active L1 table';
      else if (inside(h.refcountTableOffset, h.refcountTableClusters * cs, c)) what = 'the refcount table';
      else if (this.refcounts.isRefcountBlock(c)) what = 'a refcount block';
      else if (this.activeL2.has(c)) what = 'an active L2 table';
      if (what) {
        throw new ImageFormatError(`${this.filename}: preventing a data write at host offset 0x${c.toString(16)}: it overlaps ${what}`);
      }
    }
  }

  /** Active L1 entry `index`: the L2 table offset (0: none) and its COPIED flag. */
  l1Entry(index: number): { offset: number; copied: boolean } {
    if (index >= this.header.l1Size) return { offset: 0, copied: false };
    const hi = this.l1View.getUint32(index * 8);
    const offset = entryOffset(hi, this.l1View.getUint32(index * 8 + 4));
    checkAligned(offset, this.clusterSize, `L1 entry ${index}`);
    if (offset !== 0 && offset < this.clusterSize) {
      throw new ImageFormatError(`${this.filename}: qcow2 image is corrupt: L1 entry ${index} points into the header`);
    }
    return { offset, copied: (hi & COPIED_HI) !== 0 };
  }

  /** Sets active L1 entry `index` and writes it to disk at once. */
  async setL1Entry(index: number, offset: number, copied: boolean): Promise<void> {
    this.activeL2.delete(this.l1Entry(index).offset);
    if (offset !== 0) this.activeL2.add(offset);
    setEntry(this.l1View, index * 8, offset, copied);
    await this.file.writeGrow(this.header.l1TableOffset + index * 8, this.l1.subarray(index * 8, index * 8 + 8));
  }

  /**
   * Makes the L1 table at `offset` with `size` entries (already on disk) the
   * active one and writes the header. Cached L2 tables stay valid (they are keyed
   * by offset).
   */
  async replaceActiveL1(offset: number, size: number): Promise<void> {
    this.header.l1TableOffset = offset;
    this.header.l1Size = size;
    await this.loadL1();
    await this.writeHeader();
  }

  /** The L2 table at host `offset`, through the cache (change it, then markL2Dirty). */
  l2Table(offset: number): Promise<CachedTable> {
    return this.l2Cache.get(offset);
  }

  markL2Dirty(t: CachedTable, index: number): void {
    const bytes = this.geometry.extendedL2 ? 16 : 8;
    this.l2Cache.markDirty(t, index * bytes, index * bytes + bytes);
  }

  /** Forgets cached metadata at `offset` (a freed cluster). */
  forgetCluster(offset: number): void {
    this.l2Cache.drop(offset);
    if (this.lastCompressed && Math.floor(this.lastCompressed.hostOffset / this.clusterSize) * this.clusterSize === offset) {
      this.lastCompressed = null;
    }
  }

  /**
   * Writes all cached metadata in dependency order (refcount blocks, L2 tables,
   * sync, deferred frees, refcount blocks, sync). Callers hold no lock; the node's
   * own flush() takes it.
   */
  async flushMetadata(): Promise<void> {
    if (this.readOnly) return;
    const wroteRefcounts = await this.refcounts.flush();
    if (this.l2Cache.isDirty()) {
      if (wroteRefcounts) await this.file.flush();
      await this.l2Cache.flushAll();
    }
    if (this.refcounts.hasPendingFrees()) {
      await this.file.flush();
      await this.refcounts.applyPendingFrees((offset) => this.forgetCluster(offset));
      await this.refcounts.flush();
    }
    await this.file.flush();
  }

  /** Runs `fn` holding the node's lock alone, with no write in flight (for snapshot/amend operations). */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    for (;;) {
      const r = await this.lock.exclusive(async (): Promise<{ wait: Promise<unknown> } | { value: T }> =>
        this.inFlight.size > 0 ? { wait: this.inFlightDone([...this.inFlight]) } : { value: await fn() });
      if ('wait' in r) await r.wait;
      else return r.value;
    }
  }

  private inFlightDone(list: InFlight[]): Promise<unknown> {
    return Promise.allSettled(list.map((f) => f.done));
  }

  // ---------------------------------------------------------------- mapping

  private async readFileBytes(offset: number, length: number): Promise<Uint8Array> {
    const buf = new Uint8Array(length);
    await this.readHost(offset, buf);
    return buf;
  }

  /** Reads host bytes; whatever lies past the end of the file reads as zeroes. */
  private async readHost(offset: number, buf: Uint8Array): Promise<void> {
    const avail = Math.max(0, Math.min(buf.length, this.file.size() - offset));
    if (avail > 0) await this.file.read(offset, buf.subarray(0, avail));
    if (avail < buf.length) buf.fill(0, avail);
  }

  private where(l1Index: number): string {
    return `${this.filename}: L2 table of L1 entry ${l1Index},`;
  }

  /**
   * The run at guest `offset` (at most `maxLength` bytes, within one L2 table's
   * reach), mapped through `table` (the active L1 table unless given). Read-only.
   */
  async mapExtent(offset: number, maxLength: number, table: L1Table = this.activeTable): Promise<Extent> {
    const cached = this.mapCached(offset, maxLength, table);
    if (cached) return cached;
    const l1Index = Math.floor(offset / (this.clusterSize * this.l2Entries));
    return this.mapInTable(await this.l2Cache.get(table.l2Offset(l1Index)), l1Index, offset, maxLength, table);
  }

  /** mapExtent without I/O or await: null when the L2 table it needs is not cached. */
  private mapCached(offset: number, maxLength: number, table: L1Table): Extent | null {
    const l1Index = Math.floor(offset / (this.clusterSize * this.l2Entries));
    const l2Offset = table.l2Offset(l1Index);
    if (l2Offset === 0) {
      const end = Math.min(offset + maxLength, (l1Index + 1) * this.clusterSize * this.l2Entries);
      return { kind: KIND_UNALLOCATED, length: end - offset, hostOffset: null, compressed: null };
    }
    const t = this.l2Cache.peek(l2Offset);
    return t ? this.mapInTable(t, l1Index, offset, maxLength, table) : null;
  }

  /** The run at `offset` mapped through L2 table `t` of L1 entry `l1Index`. */
  private mapInTable(t: CachedTable, l1Index: number, offset: number, maxLength: number, table: L1Table): Extent {
    const cs = this.clusterSize;
    const end = Math.min(offset + maxLength, (l1Index + 1) * cs * this.l2Entries);
    const where = (): string => table.where(l1Index);
    const unit = this.subclusterSize;
    let pos = offset;
    let first: Extent | null = null;
    let nextHost: number | null = null;
    while (pos < end) {
      const index = Math.floor(pos / cs) % this.l2Entries;
      const e = readL2Entry(t.view, index, this.geometry, where);
      const intra = pos % cs;
      let kind: ClusterKind;
      let host: number | null;
      let unitEnd: number;
      if (e.kind === KIND_COMPRESSED || !this.geometry.extendedL2) {
        kind = e.kind;
        host = kind === KIND_DATA || (kind === KIND_ZERO && e.hostOffset !== 0) ? e.hostOffset + intra : null;
        unitEnd = pos - intra + cs;
      } else {
        const sc = Math.floor(intra / unit);
        kind = subclusterKind(e, sc);
        // Zero and unallocated subclusters of an allocated cluster keep their place.
        host = e.hostOffset !== 0 ? e.hostOffset + intra : null;
        unitEnd = pos - intra + (sc + 1) * unit;
      }
      if (first === null) {
        first = { kind, length: 0, hostOffset: host, compressed: e.compressed };
        if (kind === KIND_COMPRESSED) {
          first.length = Math.min(unitEnd, end) - offset;
          return first;
        }
      } else if (kind !== first.kind || host !== nextHost) {
        break;
      }
      let stop = Math.min(unitEnd, end);
      if (!this.geometry.extendedL2 && stop < end) stop = this.sameRunEnd(t.view, index, stop, end, host !== null);
      first.length = stop - offset;
      nextHost = host === null ? null : host + (stop - pos);
      pos = stop;
    }
    return first!;
  }

  /**
   * Standard L2 entries after entry `index` (whose cluster ends at guest `from`)
   * that repeat its words, with the host offset one cluster further on when
   * `advance`, map the same way: returns where that run ends (at most `end`).
   * Only words are compared, nothing is decoded: entries that differ in any way
   * go through readL2Entry's checks.
   */
  private sameRunEnd(view: DataView, index: number, from: number, end: number, advance: boolean): number {
    const step = advance ? this.clusterSize : 0;
    let hi = view.getUint32(index * 8);
    let lo = view.getUint32(index * 8 + 4);
    let pos = from;
    for (let at = (index + 1) * 8; pos < end; at += 8) {
      lo += step;
      if (lo >= TWO_32) {
        lo -= TWO_32;
        hi++;
      }
      if (view.getUint32(at) !== hi || view.getUint32(at + 4) !== lo) break;
      pos = Math.min(pos + this.clusterSize, end);
    }
    return pos;
  }

  // ---------------------------------------------------------------- reading

  /**
   * The synchronous read (BlockNode.readCachedSync): one mapped run through
   * cached L2 tables covering the whole range, read by the file's or the backing
   * node's readCachedSync, or zero-filled. Declines a writable image whose lock
   * is held or awaited by a metadata change, an uncached L2 table, a range that
   * spans runs of different kinds, compressed clusters, a backing node that ends
   * inside the range, and anything corrupt (read() reports it).
   */
  readCachedSync(offset: number, parts: readonly Uint8Array[], length: number): boolean {
    if (offset < 0 || offset + length > this.size() || (!this.readOnly && !this.lock.free)) return false;
    let ext: Extent | null;
    try {
      ext = this.mapCached(offset, length, this.activeTable);
    } catch {
      return false;
    }
    if (!ext || ext.length < length) return false;
    switch (ext.kind) {
      case KIND_DATA:
        return this.file.readCachedSync?.(ext.hostOffset!, parts, length) ?? false;
      case KIND_ZERO:
        return fillZero(parts);
      case KIND_UNALLOCATED: {
        const backing = this.backing;
        if (!backing || offset >= backing.size()) return fillZero(parts);
        return offset + length <= backing.size() && (backing.readCachedSync?.(offset, parts, length) ?? false);
      }
      default:
        return false;
    }
  }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    checkRange(this, this.size(), offset, buf.length);
    // Read-only: no lock to take, and nothing to mark corrupt (guard() would only rethrow).
    if (this.readOnly) return this.readAt(offset, buf);
    return this.guard(this.lock.shared(() => this.readAt(offset, buf)));
  }

  /**
   * Reads guest bytes mapped through `table` (the active L1 table unless given);
   * no lock, no range check: the caller's job.
   */
  async readAt(offset: number, buf: Uint8Array, table: L1Table = this.activeTable): Promise<void> {
    const pending: Promise<void>[] = [];
    const host: HostPiece[] = [];
    await this.planRead(offset, buf, table, host, pending);
    pending.push(this.readHostPieces(host));
    await Promise.all(pending);
  }

  /**
   * Several ranges (disjoint) read as one: mapped one after another, and the data
   * clusters that follow each other in the file read with one request.
   */
  async readRuns(runs: ReadonlyArray<{ offset: number; buf: Uint8Array }>): Promise<void> {
    for (const r of runs) checkRange(this, this.size(), r.offset, r.buf.length);
    const readAll = async (): Promise<void> => {
      const pending: Promise<void>[] = [];
      const host: HostPiece[] = [];
      for (const r of runs) await this.planRead(r.offset, r.buf, this.activeTable, host, pending);
      pending.push(this.readHostPieces(host));
      await Promise.all(pending);
    };
    if (this.readOnly) return readAll();
    return this.guard(this.lock.shared(readAll));
  }

  /** Host reads of data clusters: those inside the file in one readRuns request where the file offers it. */
  private readHostPieces(pieces: HostPiece[]): Promise<void> {
    if (pieces.length === 0) return Promise.resolve();
    if (pieces.length === 1) return this.readHost(pieces[0]!.offset, pieces[0]!.buf);
    const fileRuns = this.file.readRuns;
    if (!fileRuns) return Promise.all(pieces.map((p) => this.readHost(p.offset, p.buf))).then(() => undefined);
    const size = this.file.size();
    const inside = pieces.filter((p) => p.offset + p.buf.length <= size);
    const reads = pieces.filter((p) => p.offset + p.buf.length > size).map((p) => this.readHost(p.offset, p.buf));
    reads.push(fileRuns.call(this.file, inside));
    return Promise.all(reads).then(() => undefined);
  }

  /**
   * Maps guest bytes [offset, offset + buf.length) through `table`: data clusters
   * become `host` pieces to read, zero clusters are filled, backing and compressed
   * reads start at once (`pending`).
   */
  private async planRead(offset: number, buf: Uint8Array, table: L1Table, host: HostPiece[], pending: Promise<void>[]): Promise<void> {
    let pos = 0;
    while (pos < buf.length) {
      const ext = this.mapCached(offset + pos, buf.length - pos, table) ?? (await this.mapExtent(offset + pos, buf.length - pos, table));
      const part = buf.subarray(pos, pos + ext.length);
      switch (ext.kind) {
        case KIND_DATA:
          host.push({ offset: ext.hostOffset!, buf: part });
          break;
        case KIND_ZERO:
          part.fill(0);
          break;
        case KIND_UNALLOCATED:
          pending.push(this.readBacking(offset + pos, part));
          break;
        default:
          pending.push(this.readCompressed(ext.compressed!, (offset + pos) % this.clusterSize, part));
      }
      pos += ext.length;
    }
  }

  private async readBacking(offset: number, part: Uint8Array): Promise<void> {
    const backing = this.backing;
    const n = backing ? Math.max(0, Math.min(part.length, backing.size() - offset)) : 0;
    if (n > 0) await backing!.read(offset, part.subarray(0, n));
    if (n < part.length) part.fill(0, n);
  }

  private async readCompressed(desc: CompressedDescriptor, intra: number, part: Uint8Array): Promise<void> {
    let cached = this.lastCompressed;
    if (!cached || cached.hostOffset !== desc.hostOffset) {
      const src = await this.readFileBytes(desc.hostOffset, desc.length);
      const data = new Uint8Array(this.clusterSize);
      await decompressCluster(this.header.compressionType, src, data).catch((e: Error) => {
        throw new ImageFormatError(
          `${this.filename}: compressed cluster at host offset 0x${desc.hostOffset.toString(16)} is corrupt: ${e.message}`,
        );
      });
      cached = { hostOffset: desc.hostOffset, data };
      this.lastCompressed = cached;
    }
    part.set(cached.data.subarray(intra, intra + part.length));
  }

  blockStatus(offset: number, length: number): Promise<BlockExtent> {
    try {
      checkRange(this, this.size(), offset, length);
    } catch (e) {
      return Promise.reject(e);
    }
    if (length === 0) {
      return Promise.resolve({ offset, length: 0, allocated: false, data: false, zero: false, compressed: false, hostOffset: null });
    }
    if (!this.readOnly) return this.guard(this.lock.shared(() => this.statusAt(offset, length)));
    // A read-only node whose L2 table is cached answers without an await (convert asks once per run).
    const ext = this.mapCached(offset, length, this.activeTable);
    if (ext && (ext.kind !== KIND_DATA || this.metadataPreallocation === false)) return Promise.resolve(this.extentStatus(offset, ext));
    return this.statusAt(offset, length);
  }

  private async statusAt(offset: number, length: number): Promise<BlockExtent> {
    const ext = await this.mapExtent(offset, length);
    if (ext.kind === KIND_DATA && (this.metadataPreallocation ?? (await this.metadataPreallocated()))) {
      // QEMU asks the file about data clusters of such images: its holes read as zeroes.
      const host = ext.hostOffset!;
      if (host >= this.file.size()) return { ...this.extentStatus(offset, ext), zero: true };
      const st = await this.file.blockStatus(host, Math.min(ext.length, this.file.size() - host));
      return { ...this.extentStatus(offset, ext), zero: st.zero, length: st.length };
    }
    return this.extentStatus(offset, ext);
  }

  /** What a mapped run says as block status (unallocated runs stop where the backing node ends). */
  private extentStatus(offset: number, ext: Extent): BlockExtent {
    let len = ext.length;
    let zero = ext.kind === KIND_ZERO;
    if (ext.kind === KIND_UNALLOCATED) {
      const backingSize = this.backing ? this.backing.size() : 0;
      if (offset >= backingSize) zero = true;
      else len = Math.min(len, backingSize - offset);
    }
    return {
      offset,
      length: len,
      allocated: ext.kind !== KIND_UNALLOCATED,
      data: ext.kind === KIND_DATA || ext.kind === KIND_COMPRESSED,
      zero,
      compressed: ext.kind === KIND_COMPRESSED,
      hostOffset: ext.kind === KIND_COMPRESSED ? null : ext.hostOffset,
    };
  }

  /**
   * QEMU's test for a metadata-preallocated image, made once per open: more
   * clusters have a refcount than the file has allocated space for (at least
   * max(allocated clusters * 10/9, allocated clusters + 2) of them).
   */
  private async metadataPreallocated(): Promise<boolean> {
    if (this.metadataPreallocation === null) {
      const cs = this.clusterSize;
      const allocated = await this.file.allocatedSize();
      // A file that cannot say how much it holds (NBD, HTTP) is not preallocated, as QEMU decides.
      if (allocated < 0) this.metadataPreallocation = false;
      else {
        const realClusters = Math.floor(allocated / cs);
        const threshold = Math.max(Math.floor((realClusters * 10) / 9), realClusters + 2);
        const counted = await this.refcounts.countInUse(Math.ceil(this.file.size() / cs), threshold);
        this.metadataPreallocation = counted >= threshold;
      }
    }
    return this.metadataPreallocation;
  }

  // ---------------------------------------------------------------- writing

  private checkWritable(): void {
    if (this.readOnly) throw new BlockRequestError(`${this.filename}: the image is opened read-only`);
    if (this.corrupt) throw new ImageFormatError(`${this.filename}: qcow2: Image is corrupt; cannot be written`);
  }

  /**
   * Corruption found while the image is open read-write marks it corrupt, as
   * QEMU does, so nothing writes over damaged metadata until it is repaired.
   */
  private async guard<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (e) {
      if (!(e instanceof ImageFormatError) || this.readOnly || this.corrupt) throw e;
      this.header.incompatibleFeatures |= INCOMPAT_CORRUPT;
      await this.writeHeader();
      const what = e.message.replace(CORRUPT_PREFIX, '');
      throw new ImageFormatError(`qcow2: Marking image as corrupt: ${what}; further corruption events will be suppressed`);
    }
  }

  /** Lazy refcounts: the dirty bit goes on disk before the first change. */
  private async beforeChange(): Promise<void> {
    if (!this.lazyRefcounts || this.markedDirty) return;
    this.header.incompatibleFeatures |= INCOMPAT_DIRTY;
    await this.writeHeader();
    this.markedDirty = true;
  }

  async write(offset: number, buf: Uint8Array, opts?: WriteOptions): Promise<void> {
    this.checkWritable();
    checkRange(this, this.size(), offset, buf.length);
    if (buf.length === 0) return;
    await this.writeRanges([{ offset, buf }], opts);
  }

  /**
   * Several ranges (ascending, disjoint) as one write: mapped in one turn of the
   * lock, their data in one request per run of consecutive host clusters (fresh
   * allocations of one call follow each other), their L2 entries set after all of
   * it is on disk. The same result and crash safety as one write() per range.
   */
  async writeRuns(runs: ReadonlyArray<{ offset: number; buf: Uint8Array }>): Promise<void> {
    this.checkWritable();
    let end = 0;
    for (const r of runs) {
      checkRange(this, this.size(), r.offset, r.buf.length);
      if (r.offset < end) throw new BlockRequestError(`${this.filename}: writeRuns needs ascending, disjoint ranges`);
      end = r.offset + r.buf.length;
    }
    const ranges = runs.filter((r) => r.buf.length > 0);
    if (ranges.length > 0) await this.writeRanges(ranges);
  }

  private async writeRanges(ranges: ReadonlyArray<{ offset: number; buf: Uint8Array }>, opts?: WriteOptions): Promise<void> {
    const cs = this.clusterSize;
    const last = ranges[ranges.length - 1]!;
    let resolveDone!: () => void;
    const me: InFlight = {
      from: Math.floor(ranges[0]!.offset / cs),
      to: Math.ceil((last.offset + last.buf.length) / cs),
      done: new Promise<void>((resolve) => (resolveDone = resolve)),
    };
    try {
      const plan = await this.guard(this.mapWrite(me, ranges));
      // If a data write fails, its clusters stay allocated: a leak, never a wrong mapping.
      await this.runHostWrites(plan.writes);
      await this.guard(this.lock.exclusive(async () => {
        for (const update of plan.updates) await update();
        if (opts?.fua) await this.flushMetadata();
      }));
    } finally {
      this.inFlight.delete(me);
      resolveDone();
    }
  }

  /** Step 1 of a write, under the lock once no overlapping write is in flight; registers `me`. */
  private async mapWrite(me: InFlight, ranges: ReadonlyArray<{ offset: number; buf: Uint8Array }>): Promise<WritePlan> {
    for (;;) {
      const r = await this.lock.exclusive(async (): Promise<{ wait: Promise<unknown> } | { plan: WritePlan }> => {
        const overlapping = this.overlapping(me);
        if (overlapping.length > 0) return { wait: this.inFlightDone(overlapping) };
        await this.beforeChange();
        const plan: WritePlan = { writes: [], updates: [] };
        for (const { offset, buf } of ranges) await this.planWrite(offset, buf, plan);
        this.inFlight.add(me);
        return { plan };
      });
      if ('wait' in r) await r.wait;
      else return r.plan;
    }
  }

  /** The writes in flight whose guest clusters overlap `me`'s. */
  private overlapping(me: InFlight): InFlight[] {
    const found: InFlight[] = [];
    for (const f of this.inFlight) if (f.from < me.to && me.from < f.to) found.push(f);
    return found;
  }

  /** Step 2: the data writes, outside the lock (coverFile() knows how far they reach). */
  private async runHostWrites(writes: WritePlan['writes']): Promise<void> {
    if (writes.length === 0) return;
    this.hostWrites++;
    for (const w of writes) this.hostWritesEnd = Math.max(this.hostWritesEnd, w.host + w.data.length);
    try {
      if (writes.length === 1) await this.file.writeGrow(writes[0]!.host, writes[0]!.data);
      else await Promise.all(hostRuns(writes).map((run) => this.file.writevGrow(run.host, run.parts)));
    } finally {
      if (--this.hostWrites === 0) this.hostWritesEnd = 0;
    }
  }

  /** Runs `fn` once per L2 table's reach of [offset, offset+length). */
  private async perL2Table(offset: number, length: number, fn: (l1Index: number, from: number, to: number) => Promise<void>): Promise<void> {
    const reach = this.clusterSize * this.l2Entries;
    const first = Math.floor(offset / reach);
    if (length > 0 && offset + length <= (first + 1) * reach) return fn(first, offset, offset + length);
    let pos = offset;
    const end = offset + length;
    while (pos < end) {
      const l1Index = Math.floor(pos / reach);
      const to = Math.min(end, (l1Index + 1) * reach);
      await fn(l1Index, pos, to);
      pos = to;
    }
  }

  /** A whole write under the lock the caller holds (zeroing, compressed fallbacks, copy on write). */
  private async writeAt(offset: number, buf: Uint8Array): Promise<void> {
    const plan: WritePlan = { writes: [], updates: [] };
    await this.planWrite(offset, buf, plan);
    await this.runHostWrites(plan.writes);
    for (const update of plan.updates) await update();
  }

  private async planWrite(offset: number, buf: Uint8Array, plan: WritePlan): Promise<void> {
    await this.perL2Table(offset, buf.length, (l1Index, from, to) =>
      this.planInTable(l1Index, from, buf.subarray(from - offset, to - offset), plan),
    );
  }

  /** Bytes of guest cluster starting at `clusterStart` that lie inside the disk. */
  private clusterBytes(clusterStart: number): number {
    return Math.min(this.clusterSize, this.size() - clusterStart);
  }

  /** Can this entry's host cluster take guest data in place? */
  private inPlace(e: L2Entry): boolean {
    if (this.geometry.extendedL2) return e.kind !== KIND_COMPRESSED && e.hostOffset !== 0 && e.copied;
    return e.kind === KIND_DATA && e.copied;
  }

  /**
   * Maps a write of `data` at guest `offset`, all within the reach of L1 entry
   * `l1Index`, into `plan`: in-place runs and fresh allocations become host
   * writes plus L2 updates; partial writes that need copy on write are done here.
   */
  private async planInTable(l1Index: number, offset: number, data: Uint8Array, plan: WritePlan): Promise<void> {
    const t = this.cachedL2ForWrite(l1Index) ?? (await this.l2ForWrite(l1Index));
    const cs = this.clusterSize;
    const where = this.where(l1Index);
    let pos = 0;
    while (pos < data.length) {
      const g = offset + pos;
      const index = Math.floor(g / cs) % this.l2Entries;
      const intra = g % cs;
      const n = Math.min(cs - intra, data.length - pos);
      const e = readL2Entry(t.view, index, this.geometry, where);
      const whole = intra === 0 && n === this.clusterBytes(g);
      if (this.inPlace(e) && (whole || this.subclustersReady(e, intra, n))) {
        // A run of in-place clusters with contiguous hosts: one write.
        let len = n;
        let next = index + 1;
        while (pos + len < data.length && next < this.l2Entries) {
          const ne = readL2Entry(t.view, next, this.geometry, where);
          const nn = Math.min(cs, data.length - pos - len);
          if (!this.inPlace(ne) || ne.hostOffset !== e.hostOffset + (next - index) * cs) break;
          if (nn < this.clusterBytes(g + len) && !this.subclustersReady(ne, 0, nn)) break;
          len += nn;
          next++;
        }
        this.checkOverlap(e.hostOffset, len + intra);
        plan.writes.push({ host: e.hostOffset + intra, data: data.subarray(pos, pos + len) });
        if (this.geometry.extendedL2) {
          const runEnd = offset + pos + len;
          plan.updates.push(async () => {
            const t = this.cachedL2ForWrite(l1Index) ?? (await this.l2ForWrite(l1Index));
            for (let i = index, p = g; i < next; i++) {
              const from = p % cs;
              const to = Math.min(cs, from + (runEnd - p));
              this.setSubclustersAllocated(t, i, where, from, to);
              p += to - from;
            }
          });
        }
        pos += len;
      } else if (whole) {
        // A run of whole clusters that need new host clusters: allocate together.
        let count = 1;
        let len = n;
        while (pos + len < data.length && index + count < this.l2Entries) {
          const nn = Math.min(cs, data.length - pos - len);
          if (nn !== this.clusterBytes(g + len) || this.canWriteInPlace(t.view, index + count, where)) break;
          len += nn;
          count++;
        }
        const host = await this.refcounts.allocateClusters(count, { commit: false });
        if (len < count * cs) await this.coverFile(host + count * cs);
        plan.writes.push({ host, data: data.subarray(pos, pos + len) });
        plan.updates.push(() => this.pointAtNewClusters(l1Index, index, count, host, where));
        pos += len;
      } else {
        await this.writePartialCluster(t, index, e, g, data.subarray(pos, pos + n));
        pos += n;
      }
    }
  }

  /** inPlace() of entry `index`; an all-zero standard entry (unallocated) is not decoded. */
  private canWriteInPlace(view: DataView, index: number, where: string): boolean {
    if (!this.geometry.extendedL2 && view.getUint32(index * 8) === 0 && view.getUint32(index * 8 + 4) === 0) return false;
    return this.inPlace(readL2Entry(view, index, this.geometry, where));
  }

  /**
   * Step 3 of a write of fresh clusters: L2 entries [index, index+count) of L1
   * entry `l1Index` point at the clusters from `host` on; what they held is
   * released. Unallocated standard entries (a new image's) are set without decoding.
   */
  private async pointAtNewClusters(l1Index: number, index: number, count: number, host: number, where: string): Promise<void> {
    const t = this.cachedL2ForWrite(l1Index) ?? (await this.l2ForWrite(l1Index));
    const bytes = this.geometry.extendedL2 ? 16 : 8;
    for (let i = 0; i < count; i++) {
      const at = (index + i) * bytes;
      const to = host + i * this.clusterSize;
      if (bytes === 8 && t.view.getUint32(at) === 0 && t.view.getUint32(at + 4) === 0) {
        setEntry(t.view, at, to, true);
        continue;
      }
      const old = readL2Entry(t.view, index + i, this.geometry, where);
      writeL2Entry(t.view, index + i, this.geometry, to, true, { allocMask: ALL_SUBCLUSTERS });
      this.release(old);
    }
    this.l2Cache.markDirty(t, index * bytes, (index + count) * bytes);
  }

  /** Extended L2: every partly written subcluster in [intra, intra+n) is already allocated. */
  private subclustersReady(e: L2Entry, intra: number, n: number): boolean {
    if (!this.geometry.extendedL2) return true;
    const unit = this.subclusterSize;
    const first = Math.floor(intra / unit);
    const last = Math.floor((intra + n - 1) / unit);
    const headPartial = intra % unit !== 0;
    const tailPartial = (intra + n) % unit !== 0 && intra + n < this.clusterSize;
    if (headPartial && !(e.allocMask & (1 << first))) return false;
    if (tailPartial && !(e.allocMask & (1 << last))) return false;
    return true;
  }

  private setSubclustersAllocated(t: CachedTable, index: number, where: string, from: number, to: number): void {
    const e = readL2Entry(t.view, index, this.geometry, where);
    const mask = subclusterMask(Math.floor(from / this.subclusterSize), Math.floor((to - 1) / this.subclusterSize));
    const alloc = (e.allocMask | mask) >>> 0;
    const zero = (e.zeroMask & ~mask) >>> 0;
    if (alloc === e.allocMask && zero === e.zeroMask) return;
    writeL2Entry(t.view, index, this.geometry, e.hostOffset, e.copied, { allocMask: alloc, zeroMask: zero });
    this.markL2Dirty(t, index);
  }

  /**
   * Makes the file long enough to hold host bytes up to `end`. A data write in
   * flight past `end` will make it so; one below it is not cut off by extending.
   */
  private async coverFile(end: number): Promise<void> {
    if (this.file.size() < end && this.hostWritesEnd < end) await this.file.truncate(end);
  }

  /** A write of part of one cluster that cannot go in place as it is. */
  private async writePartialCluster(t: CachedTable, index: number, e: L2Entry, g: number, part: Uint8Array): Promise<void> {
    const cs = this.clusterSize;
    const clusterStart = g - (g % cs);
    const intra = g % cs;
    if (!this.geometry.extendedL2) {
      // A zero cluster that keeps its own allocation is rewritten in place.
      const reuse = e.kind === KIND_ZERO && e.hostOffset !== 0 && e.copied;
      const content = new Uint8Array(cs);
      if (!reuse) await this.readAt(clusterStart, content.subarray(0, this.clusterBytes(clusterStart)));
      content.set(part, intra);
      const host = reuse ? e.hostOffset : await this.refcounts.allocateClusters(1);
      if (reuse) this.checkOverlap(host, cs);
      await this.file.writeGrow(host, content);
      writeL2Entry(t.view, index, this.geometry, host, true);
      this.markL2Dirty(t, index);
      if (!reuse) this.release(e);
      return;
    }
    // Extended L2: build the span of touched subclusters; partly written ones take
    // their current content first.
    const unit = this.subclusterSize;
    const first = Math.floor(intra / unit);
    const last = Math.floor((intra + part.length - 1) / unit);
    const spanStart = first * unit;
    const span = new Uint8Array((last + 1) * unit - spanStart);
    if (intra % unit !== 0) await this.readInDisk(clusterStart + spanStart, span.subarray(0, unit));
    if ((intra + part.length) % unit !== 0 && (last !== first || intra % unit === 0)) {
      await this.readInDisk(clusterStart + last * unit, span.subarray(span.length - unit));
    }
    span.set(part, intra - spanStart);
    const mask = subclusterMask(first, last);
    let alloc = (e.allocMask | mask) >>> 0;
    const zero = (e.zeroMask & ~mask) >>> 0;
    let host: number;
    if (this.inPlace(e)) {
      host = e.hostOffset;
      this.checkOverlap(host, cs);
      await this.file.writeGrow(host + spanStart, span);
    } else if (e.kind === KIND_COMPRESSED || e.hostOffset !== 0) {
      // Copy on write of a compressed or shared cluster: the whole cluster moves.
      const content = new Uint8Array(cs);
      await this.readAt(clusterStart, content.subarray(0, this.clusterBytes(clusterStart)));
      content.set(span, spanStart);
      host = await this.refcounts.allocateClusters(1);
      await this.file.writeGrow(host, content);
      if (e.kind === KIND_COMPRESSED) alloc = ALL_SUBCLUSTERS;
      this.release(e);
    } else {
      host = await this.refcounts.allocateClusters(1);
      await this.file.writeGrow(host + spanStart, span);
      await this.coverFile(host + cs);
    }
    writeL2Entry(t.view, index, this.geometry, host, true, { allocMask: alloc, zeroMask: e.kind === KIND_COMPRESSED ? 0 : zero });
    this.markL2Dirty(t, index);
  }

  /** Reads guest bytes, zeroes for the part past the virtual size. */
  private async readInDisk(offset: number, buf: Uint8Array): Promise<void> {
    const n = Math.max(0, Math.min(buf.length, this.size() - offset));
    if (n > 0) await this.readAt(offset, buf.subarray(0, n));
    if (n < buf.length) buf.fill(0, n);
  }

  /** The entry no longer references its host storage: free it after the next metadata flush. */
  private release(e: L2Entry): void {
    if (e.kind === KIND_COMPRESSED) this.refcounts.queueFree(e.compressed!.hostOffset, e.compressed!.length);
    else if (e.hostOffset !== 0) this.refcounts.queueFree(e.hostOffset, this.clusterSize);
  }

  /** The L2 table for L1 entry `l1Index` when it is writable as it is and cached (no I/O), else null. */
  private cachedL2ForWrite(l1Index: number): CachedTable | null {
    const { offset, copied } = this.l1Entry(l1Index);
    return offset !== 0 && copied ? (this.l2Cache.peek(offset) ?? null) : null;
  }

  /**
   * The L2 table for L1 entry `l1Index`, ready to be changed: allocated if there
   * is none, copied if it is shared (no COPIED flag). The new table is on disk
   * before the L1 entry points to it.
   */
  private async l2ForWrite(l1Index: number): Promise<CachedTable> {
    const { offset, copied } = this.l1Entry(l1Index);
    if (offset !== 0 && copied) return this.l2Cache.get(offset);
    const data = offset !== 0 ? (await this.l2Cache.get(offset)).data.slice() : new Uint8Array(this.clusterSize);
    const newOffset = await this.refcounts.allocateClusters(1);
    const t = await this.l2Cache.create(newOffset, data);
    await this.l2Cache.writeTable(t);
    await this.setL1Entry(l1Index, newOffset, true);
    if (offset !== 0) this.refcounts.queueFree(offset, this.clusterSize);
    return t;
  }

  // ---------------------------------------------------------------- zeroing, discard

  async writeZeroes(offset: number, length: number, opts?: ZeroOptions): Promise<void> {
    this.checkWritable();
    checkRange(this, this.size(), offset, length);
    if (length === 0) return;
    await this.guard(this.exclusive(async () => {
      await this.beforeChange();
      await this.zeroAt(offset, length, opts?.mayUnmap ?? false);
    }));
  }

  private async zeroAt(offset: number, length: number, mayUnmap: boolean): Promise<void> {
    // Units the metadata can mark as zero: clusters, or subclusters with extended L2.
    // The last unit may be cut short by the end of the disk; it still counts as whole.
    const unit = this.subclusterSize;
    const end = offset + length;
    const a = Math.ceil(offset / unit) * unit;
    const b = end === this.size() ? end : Math.floor(end / unit) * unit;
    if (a >= b) return this.writeZeroBytes(offset, length);
    if (offset < a) await this.writeZeroBytes(offset, a - offset);
    if (this.header.version === 2) await this.zeroClustersV2(a, b);
    else await this.perL2Table(a, b - a, (l1, from, to) => this.zeroInTable(l1, from, to, mayUnmap));
    if (b < end) await this.writeZeroBytes(b, end - b);
  }

  private async writeZeroBytes(offset: number, length: number): Promise<void> {
    const chunk = new Uint8Array(Math.min(length, 1 << 20));
    for (let pos = 0; pos < length; pos += chunk.length) {
      const n = Math.min(chunk.length, length - pos);
      await this.writeAt(offset + pos, chunk.subarray(0, n));
    }
  }

  /** Version 2 has no zero flag: deallocate when nothing shows through, else write zeroes. */
  private async zeroClustersV2(from: number, to: number): Promise<void> {
    if (this.backing) return this.writeZeroBytes(from, to - from);
    await this.perL2Table(from, to - from, (l1, a, b) => this.deallocateInTable(l1, a, b));
  }

  private async deallocateInTable(l1Index: number, from: number, to: number): Promise<void> {
    if (this.l1Entry(l1Index).offset === 0) return;
    const t = await this.l2ForWrite(l1Index);
    const where = this.where(l1Index);
    for (let g = from; g < to; g += this.clusterSize) {
      const index = Math.floor(g / this.clusterSize) % this.l2Entries;
      const e = readL2Entry(t.view, index, this.geometry, where);
      if (e.kind === KIND_UNALLOCATED) continue;
      writeL2Entry(t.view, index, this.geometry, 0, false);
      this.markL2Dirty(t, index);
      this.release(e);
    }
  }

  /** Version 3: zero flags (or zero bitmaps) for whole units in [from, to). */
  private async zeroInTable(l1Index: number, from: number, to: number, mayUnmap: boolean): Promise<void> {
    if (this.l1Entry(l1Index).offset === 0 && !this.backing) return;
    const t = await this.l2ForWrite(l1Index);
    const cs = this.clusterSize;
    const where = this.where(l1Index);
    let g = from;
    while (g < to) {
      const index = Math.floor(g / cs) % this.l2Entries;
      const intra = g % cs;
      const n = Math.min(cs - intra, to - g);
      const e = readL2Entry(t.view, index, this.geometry, where);
      const whole = intra === 0 && n === this.clusterBytes(g);
      if (!this.geometry.extendedL2) {
        const keep = e.kind === KIND_DATA && e.copied && !mayUnmap;
        writeL2Entry(t.view, index, this.geometry, keep ? e.hostOffset : 0, keep, { zero: true });
        if (!keep) this.release(e);
      } else if (e.kind === KIND_COMPRESSED) {
        if (whole) {
          writeL2Entry(t.view, index, this.geometry, 0, false, { zeroMask: ALL_SUBCLUSTERS });
          this.release(e);
        } else {
          await this.writeZeroBytes(g, n);
        }
      } else {
        const dropHost = whole && (mayUnmap || !e.copied);
        const mask = subclusterMask(Math.floor(intra / this.subclusterSize), Math.floor((intra + n - 1) / this.subclusterSize));
        writeL2Entry(t.view, index, this.geometry, dropHost ? 0 : e.hostOffset, dropHost ? false : e.copied, {
          allocMask: (e.allocMask & ~mask) >>> 0,
          zeroMask: (e.zeroMask | mask) >>> 0,
        });
        if (dropHost) this.release(e);
      }
      this.markL2Dirty(t, index);
      g += n;
    }
  }

  async discard(offset: number, length: number): Promise<void> {
    this.checkWritable();
    checkRange(this, this.size(), offset, length);
    const cs = this.clusterSize;
    const end = offset + length;
    const from = Math.ceil(offset / cs) * cs;
    const to = end === this.size() ? Math.ceil(end / cs) * cs : Math.floor(end / cs) * cs;
    if (from >= to) return;
    await this.guard(this.exclusive(async () => {
      await this.beforeChange();
      await this.perL2Table(from, Math.min(to, this.size()) - from, (l1, a, b) => this.discardInTable(l1, a, b, false));
    }));
  }

  /**
   * Drops whole clusters in [from, to). Unless `full`, a cluster keeps reading as
   * zeroes where it was allocated or a backing file would show through (version 3);
   * version 2 images simply deallocate (QEMU does the same).
   */
  private async discardInTable(l1Index: number, from: number, to: number, full: boolean): Promise<void> {
    const zeroesHideBacking = !full && this.header.version >= 3 && this.backing !== null;
    if (this.l1Entry(l1Index).offset === 0 && !zeroesHideBacking) return;
    const t = await this.l2ForWrite(l1Index);
    const where = this.where(l1Index);
    for (let g = from; g < to; g += this.clusterSize) {
      const index = Math.floor(g / this.clusterSize) % this.l2Entries;
      const e = readL2Entry(t.view, index, this.geometry, where);
      const allocated = e.kind !== KIND_UNALLOCATED || e.hostOffset !== 0 || e.zeroMask !== 0;
      const keepZero = !full && this.header.version >= 3 && (this.backing !== null || allocated);
      if (!allocated && !keepZero) continue;
      if (this.geometry.extendedL2) {
        writeL2Entry(t.view, index, this.geometry, 0, false, { zeroMask: keepZero ? ALL_SUBCLUSTERS : 0 });
      } else {
        writeL2Entry(t.view, index, this.geometry, 0, false, { zero: keepZero });
      }
      this.markL2Dirty(t, index);
      this.release(e);
    }
  }

  // ---------------------------------------------------------------- compressed writes

  async writeCompressed(offset: number, buf: Uint8Array): Promise<void> {
    this.checkWritable();
    checkRange(this, this.size(), offset, buf.length);
    const cs = this.clusterSize;
    if (offset % cs !== 0 || (buf.length % cs !== 0 && offset + buf.length !== this.size())) {
      throw new BlockRequestError(
        `${this.filename}: compressed writes must cover whole clusters (offset ${offset}, length ${buf.length}, cluster size ${cs})`,
      );
    }
    await withCompressedClusters(this.header.compressionType, buf, cs, (compressed) =>
      this.guard(this.exclusive(async () => {
        await this.beforeChange();
        const placed: Array<{ g: number; host: number; packed: Uint8Array }> = [];
        for (let i = 0; i < compressed.length; i++) {
          const g = offset + i * cs;
          const packed = compressed[i];
          if (packed) placed.push({ g, host: await this.refcounts.allocateBytes(packed.length), packed });
          else await this.writeAt(g, buf.subarray(i * cs, i * cs + this.clusterBytes(g)));
        }
        // The data first, one request per run of pieces packed back to back; then the L2 entries.
        await Promise.all(contiguousRuns(placed).map((run) => this.file.writevGrow(run.host, run.parts)));
        for (const { g, host, packed } of placed) {
          const l1Index = Math.floor(g / (cs * this.l2Entries));
          const t = await this.l2ForWrite(l1Index);
          const index = Math.floor(g / cs) % this.l2Entries;
          const old = readL2Entry(t.view, index, this.geometry, this.where(l1Index));
          // Compressed clusters have no subclusters: the bitmap half is cleared first.
          writeL2Entry(t.view, index, this.geometry, 0, false);
          setCompressedEntry(t.view, index * (this.geometry.extendedL2 ? 16 : 8), host, packed.length, this.clusterBits);
          this.markL2Dirty(t, index);
          this.release(old);
        }
      })),
    );
  }

  // ---------------------------------------------------------------- resize

  async truncate(size: number, opts?: TruncateOptions): Promise<void> {
    this.checkWritable();
    if (!Number.isSafeInteger(size) || size < 0) throw new BlockRequestError(`${this.filename}: invalid size ${size}`);
    await this.guard(this.exclusive(async () => {
      const old = this.size();
      if (size === old) return;
      await this.beforeChange();
      if (size > old) await this.grow(size, opts?.preallocation ?? 'off');
      else {
        if (!opts?.shrink) {
          throw new BlockRequestError(`${this.filename}: shrinking the image needs shrinking to be allowed (--shrink)`);
        }
        if (opts.preallocation && opts.preallocation !== 'off') {
          throw new BlockRequestError(`${this.filename}: preallocation cannot be used when shrinking an image`);
        }
        await this.shrink(size);
      }
    }));
  }

  private async grow(size: number, prealloc: Preallocation): Promise<void> {
    const old = this.size();
    const needed = l1EntriesFor(size, this.clusterBits, this.geometry.extendedL2);
    if (needed > this.header.l1Size) await this.growL1(needed);
    this.header.size = size;
    if (prealloc !== 'off') await this.preallocate(old, size, prealloc);
    await this.writeHeader();
  }

  /** Moves the active L1 table to a new, larger place; the header switches once it is on disk. */
  private async growL1(entries: number): Promise<void> {
    const h = this.header;
    if (entries * 8 > 32 * 2 ** 20) throw new BlockRequestError(`${this.filename}: the image would need an L1 table larger than 32 MiB`);
    const cs = this.clusterSize;
    const clusters = Math.ceil((entries * 8) / cs);
    const offset = await this.refcounts.allocateClusters(clusters);
    const table = new Uint8Array(clusters * cs);
    table.set(this.l1);
    await this.file.writeGrow(offset, table);
    await this.file.flush();
    const oldOffset = h.l1TableOffset;
    const oldBytes = h.l1Size * 8;
    h.l1TableOffset = offset;
    h.l1Size = entries;
    this.l1 = table.subarray(0, entries * 8);
    this.l1View = new DataView(this.l1.buffer, this.l1.byteOffset, this.l1.byteLength);
    await this.writeHeader();
    if (oldBytes > 0) this.refcounts.queueFree(oldOffset, Math.ceil(oldBytes / cs) * cs);
  }

  /** Allocates L2 tables and data clusters for [from, to); falloc/full also reserve or zero the host space. */
  private async preallocate(from: number, to: number, mode: Preallocation): Promise<void> {
    const cs = this.clusterSize;
    const runs: Array<[number, number]> = [];
    await this.perL2Table(Math.floor(from / cs) * cs, to - Math.floor(from / cs) * cs, async (l1Index, a, b) => {
      const t = await this.l2ForWrite(l1Index);
      const where = this.where(l1Index);
      let g = a;
      while (g < b) {
        const index = Math.floor(g / cs) % this.l2Entries;
        if (readL2Entry(t.view, index, this.geometry, where).kind !== KIND_UNALLOCATED) { g += cs; continue; }
        let count = 1;
        while (g + count * cs < b && index + count < this.l2Entries &&
          readL2Entry(t.view, index + count, this.geometry, where).kind === KIND_UNALLOCATED) count++;
        const host = await this.refcounts.allocateClusters(count);
        for (let i = 0; i < count; i++) {
          writeL2Entry(t.view, index + i, this.geometry, host + i * cs, true, { allocMask: ALL_SUBCLUSTERS });
          this.markL2Dirty(t, index + i);
        }
        runs.push([host, count * cs]);
        g += count * cs;
      }
    });
    const end = runs.reduce((m, [h, n]) => Math.max(m, h + n), 0);
    await this.coverFile(end);
    for (const [host, length] of runs) {
      if (mode === 'falloc') await this.file.writeZeroes(host, length);
      else if (mode === 'full') {
        const zero = new Uint8Array(Math.min(length, 1 << 20));
        for (let p = 0; p < length; p += zero.length) await this.file.writeGrow(host + p, zero.subarray(0, Math.min(zero.length, length - p)));
      }
    }
    await this.flushMetadata();
  }

  private async shrink(size: number): Promise<void> {
    if (this.snapshots.length > 0) {
      throw new BlockRequestError(`${this.filename}: Can't shrink an image with internal snapshots`);
    }
    const cs = this.clusterSize;
    const reach = cs * this.l2Entries;
    const old = this.size();
    const from = Math.ceil(size / cs) * cs;
    const end = Math.ceil(old / cs) * cs;
    if (from < end) await this.perL2Table(from, end - from, (l1, a, b) => this.discardInTable(l1, a, b, true));
    // L2 tables wholly past the new end go too (QEMU keeps the L1 size).
    for (let i = Math.ceil(size / reach); i < this.header.l1Size; i++) {
      const { offset } = this.l1Entry(i);
      if (offset === 0) continue;
      await this.setL1Entry(i, 0, false);
      this.refcounts.queueFree(offset, cs);
    }
    this.header.size = size;
    await this.writeHeader();
    await this.flushMetadata();
    const used = await this.refcounts.endOfUsedClusters();
    if (used < this.file.size()) await this.file.truncate(used, { shrink: true });
  }

  // ---------------------------------------------------------------- flush, close

  async flush(): Promise<void> {
    if (this.readOnly) return;
    await this.lock.exclusive(() => this.flushMetadata());
  }

  async allocatedSize(): Promise<number> {
    return this.file.allocatedSize();
  }

  async close(): Promise<void> {
    try {
      if (!this.readOnly) {
        await this.exclusive(async () => {
          await this.flushMetadata();
          if (this.markedDirty) {
            this.header.incompatibleFeatures &= ~INCOMPAT_DIRTY;
            await this.writeHeader();
            this.markedDirty = false;
          }
        });
      }
    } finally {
      await this.file.close();
    }
  }
}

/** Host writes (in plan order) grouped into runs that follow each other on the host. */
function hostRuns(writes: WritePlan['writes']): Array<{ host: number; parts: Uint8Array[] }> {
  return contiguousRuns(writes.map((w) => ({ host: w.host, packed: w.data })));
}

/** Pieces placed at host offsets, grouped into runs of pieces that follow each other. */
function contiguousRuns(pieces: ReadonlyArray<{ host: number; packed: Uint8Array }>): Array<{ host: number; parts: Uint8Array[] }> {
  const runs: Array<{ host: number; parts: Uint8Array[]; end: number }> = [];
  for (const p of pieces) {
    const last = runs[runs.length - 1];
    if (last && last.end === p.host) last.parts.push(p.packed);
    else runs.push({ host: p.host, parts: [p.packed], end: p.host });
    runs[runs.length - 1]!.end += p.packed.length;
  }
  return runs;
}

const ZERO_BLOCK_BITS = 16;
/**
 * What fillZero copies from: views of 1, 2, 4, … 65536 bytes of one zeroed
 * block, so that any length is a few copies and no allocation (guest RAM is
 * shared memory, where fill(0) runs at half the speed of a copy).
 */
const ZERO_BLOCK = new Uint8Array(2 ** ZERO_BLOCK_BITS);
const ZEROES = Array.from({ length: ZERO_BLOCK_BITS + 1 }, (_, k) => ZERO_BLOCK.subarray(0, 2 ** k));

/** Zeroes every part; true (readCachedSync's answer for a range that reads as zeroes). */
function fillZero(parts: readonly Uint8Array[]): true {
  for (const p of parts) {
    for (let at = 0; at < p.length;) {
      const zeroes = ZEROES[31 - Math.clz32(Math.min(ZERO_BLOCK.length, p.length - at))]!;
      p.set(zeroes, at);
      at += zeroes.length;
    }
  }
  return true;
}

/** Length of `bytes` up to its last non-zero byte, in whole 512-byte sectors (at least one). */
function usedSectors(bytes: Uint8Array): number {
  return Math.min(bytes.length, Math.max(512, Math.ceil(usedLength(bytes) / 512) * 512));
}
