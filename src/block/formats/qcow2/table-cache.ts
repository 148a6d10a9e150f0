/**
 * A write-back cache of cluster-sized qcow2 metadata tables (L2 tables,
 * refcount blocks), keyed by their offset in the image file.
 *
 * Each cached table tracks the byte range changed since it was last written;
 * writeBack() writes only that range, widened to 512-byte sectors, so a
 * write-through after changing one entry costs one sector. The cache holds at
 * most `capacity` tables and evicts the least recently used one, writing it
 * back first when it is dirty. Ordering between caches (refcount blocks before
 * L2 tables) is the owner's business: it calls writeBack()/flushAll() in the
 * order it needs; eviction only ever writes the table being evicted, after the
 * owner's beforeWrite hook (which writes what the table depends on). While an
 * evicted table's write-back is in flight it stays findable (`evicting`): a
 * lookup then gets the cached copy back rather than the file's older one.
 */
import type { ProtocolNode } from '../../protocols/protocol.js';

export interface CachedTable {
  readonly offset: number;
  readonly data: Uint8Array;
  readonly view: DataView;
  /** Changed bytes not yet written: [dirtyFrom, dirtyTo), empty when from >= to. */
  dirtyFrom: number;
  dirtyTo: number;
}

const SECTOR = 512;

export class TableCache {
  private readonly tables = new Map<number, CachedTable>();
  /** Evicted tables whose write-back has not finished, by offset. */
  private readonly evicting = new Map<number, CachedTable>();
  /** The table last inserted or moved to the end of `tables` (a repeated hit need not move it again). */
  private newest: CachedTable | undefined;

  constructor(
    private readonly file: ProtocolNode,
    readonly tableSize: number,
    private readonly capacity: number,
    /** Names the tables in error messages ("L2 table", "refcount block"). */
    private readonly what: string,
    /** Runs before any table is written (what the tables depend on goes first). */
    private readonly beforeWrite: (() => Promise<void>) | null = null,
  ) {}

  /** The table at `offset` if it is cached (marked most recently used), else undefined: no I/O, no await. */
  peek(offset: number): CachedTable | undefined {
    const hit = this.tables.get(offset) ?? this.evicting.get(offset);
    if (hit && hit !== this.newest) {
      this.tables.delete(offset);
      this.tables.set(offset, hit);
      this.newest = hit;
    }
    return hit;
  }

  /** The table at `offset`, read from the file on a miss. */
  async get(offset: number): Promise<CachedTable> {
    const hit = this.peek(offset);
    if (hit) return hit;
    const data = new Uint8Array(this.tableSize);
    const end = Math.min(offset + this.tableSize, this.file.size());
    if (end <= offset) {
      throw new Error(`${this.file.filename}: ${this.what} at offset 0x${offset.toString(16)} lies past the end of the file`);
    }
    await this.file.read(offset, data.subarray(0, end - offset));
    return this.insert(offset, data, false);
  }

  /** Puts a new table (e.g. a fresh L2 table) in the cache, marked dirty in full. */
  async create(offset: number, data: Uint8Array): Promise<CachedTable> {
    this.tables.delete(offset);
    this.evicting.delete(offset);
    return this.insert(offset, data, true);
  }

  private async insert(offset: number, data: Uint8Array, dirty: boolean): Promise<CachedTable> {
    const t: CachedTable = {
      offset,
      data,
      view: new DataView(data.buffer, data.byteOffset, data.byteLength),
      dirtyFrom: dirty ? 0 : this.tableSize,
      dirtyTo: dirty ? this.tableSize : 0,
    };
    this.tables.set(offset, t);
    this.newest = t;
    while (this.tables.size > this.capacity) {
      const [oldest, victim] = this.tables.entries().next().value as [number, CachedTable];
      this.tables.delete(oldest);
      this.evicting.set(oldest, victim);
      try {
        await this.writeTable(victim);
      } finally {
        if (this.evicting.get(oldest) === victim) this.evicting.delete(oldest);
      }
    }
    return t;
  }

  markDirty(t: CachedTable, from: number, to: number): void {
    // A table evicted while its user still held it comes back, so the change is not lost.
    if (this.tables.get(t.offset) !== t) {
      this.tables.set(t.offset, t);
      this.newest = t;
    }
    if (from < t.dirtyFrom) t.dirtyFrom = from;
    if (to > t.dirtyTo) t.dirtyTo = to;
  }

  isDirty(): boolean {
    for (const t of this.tables.values()) if (t.dirtyFrom < t.dirtyTo) return true;
    return false;
  }

  /** Writes one table's changed sectors. */
  async writeTable(t: CachedTable): Promise<void> {
    if (t.dirtyFrom >= t.dirtyTo) return;
    if (this.beforeWrite) await this.beforeWrite();
    const from = Math.floor(t.dirtyFrom / SECTOR) * SECTOR;
    const to = Math.min(this.tableSize, Math.ceil(t.dirtyTo / SECTOR) * SECTOR);
    t.dirtyFrom = this.tableSize;
    t.dirtyTo = 0;
    await this.file.writeGrow(t.offset + from, t.data.subarray(from, to));
  }

  /** Writes every dirty table; returns whether anything was written. */
  async flushAll(): Promise<boolean> {
    let wrote = false;
    for (const t of [...this.tables.values()]) {
      if (t.dirtyFrom < t.dirtyTo) {
        await this.writeTable(t);
        wrote = true;
      }
    }
    return wrote;
  }

  /** Forgets the table at `offset` without writing it (the cluster was freed). */
  drop(offset: number): void {
    if (this.newest?.offset === offset) this.newest = undefined;
    this.tables.delete(offset);
    this.evicting.delete(offset);
  }
}
