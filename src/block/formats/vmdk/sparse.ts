/**
 * A VMDK sparse extent (KDMV hosted sparse, stream-optimized, or COWD vmfsSparse):
 * the extent's grains are found through a grain directory (GD) of grain-table (GT)
 * sector offsets; a GT entry is 0 (unallocated: the backing image shows through),
 * 1 with the zeroed-grain flag (reads as zeroes), or the sector of the grain, which
 * in a compressed extent starts with a 12-byte marker (LBA, compressed length)
 * before the deflate (zlib) stream.
 *
 * The GD is read at open; GTs are read on first use and kept. A GD entry or GT
 * entry pointing past the end of the file is an ImageFormatError naming it.
 *
 * lookup() reports runs of grains: stored grains whose sectors follow each other
 * (one read or write for all of them), or grains of one unallocated/zero kind,
 * up to the end of the grain table.
 *
 * Writes (hosted sparse) go a run at a time: stored grains are written in place;
 * a run of grains with no data gets consecutive new grains at the end of the file,
 * written whole with one pwritev (partly written grains merged with the bytes
 * below), then their GT entries, in the primary GT and the redundant one, one
 * write per table: data before the metadata that points at it.
 * A grain table the directory lacks is allocated (zeroed) the same way before use.
 * Allocations are serialised; a write that finds some of its grains allocated
 * while it waited goes grain by grain (in place where stored). With zeroed-grain
 * entries, zeroing a whole grain of an image without backing only sets its entry
 * to 1.
 *
 * Writes (stream-optimized, stream.ts): every write of a grain appends a
 * compressed grain with its marker after the last grain and points the in-memory
 * GT at it; flush and close write the GTs, the GD, the footer and the
 * end-of-stream marker after the grains (metadata at the end, as VMware's stream
 * format has it) and trim the file there. A process killed between a write and
 * the next flush leaves a stream image without its footer.
 */
import zlib from 'node:zlib';
import { ImageFormatError } from '../../node.js';
import type { ProtocolNode } from '../../protocols/protocol.js';
import {
  type Extent,
  type ExtentRun,
  type ReadBelow,
  RUN_COMPRESSED,
  RUN_DATA,
  RUN_UNALLOCATED,
  RUN_ZERO,
} from './extent.js';
import {
  decodeEntries,
  encodeEntries,
  FLAG_COMPRESSED,
  FLAG_ZEROED_GRAIN,
  GD_AT_END,
  SECTOR,
  type SparseHeader,
} from './sparse-header.js';
import { readStreamFooter, StreamTail } from './stream.js';

const GRAIN_MARKER_BYTES = 12;
/** Inflated grains kept for reads that cut one grain into several requests. */
const RECENT_GRAINS = 16;

export class SparseExtent implements Extent {
  readonly size: number;
  readonly granularity: number;
  readonly compressed: boolean;
  private readonly zeroedGrains: boolean;
  private readonly gtBytes: number;
  private readonly gts = new Map<number, Uint32Array>();
  private allocation: Promise<void> = Promise.resolve();
  /** Next free sector for grains and tables (hosted sparse). */
  private nextSector: number;
  /** Recently inflated grains by index (with the sector they were read from), oldest first. */
  private readonly recentGrains = new Map<number, { sector: number; data: Uint8Array }>();

  private constructor(
    readonly file: ProtocolNode,
    readonly header: SparseHeader,
    private readonly gd: Uint32Array,
    private readonly rgd: Uint32Array | null,
    private readonly owned: boolean,
    /** Stream-optimized writer state (null when read-only or not compressed). */
    private readonly tail: StreamTail | null,
  ) {
    this.size = header.capacity * SECTOR;
    this.granularity = header.grainSectors * SECTOR;
    this.compressed = (header.flags & FLAG_COMPRESSED) !== 0;
    this.zeroedGrains = (header.flags & FLAG_ZEROED_GRAIN) !== 0;
    this.gtBytes = header.gtEntries * 4;
    this.nextSector = Math.max(Math.ceil(file.size() / SECTOR), header.overhead);
  }

  static async open(file: ProtocolNode, header: SparseHeader, owned: boolean): Promise<SparseExtent> {
    let gdHeader = header;
    if (header.gdOffset === GD_AT_END) gdHeader = await readStreamFooter(file, header);
    const gd = await readDirectory(file, gdHeader.gdOffset, gdHeader.gdEntries, 'grain directory');
    const rgd = gdHeader.rgdOffset > 0 && gdHeader.rgdOffset !== GD_AT_END
      ? await readDirectory(file, gdHeader.rgdOffset, gdHeader.gdEntries, 'redundant grain directory')
      : null;
    const compressed = (header.flags & FLAG_COMPRESSED) !== 0;
    const tail = compressed && !file.readOnly ? new StreamTail(gdHeader) : null;
    const extent = new SparseExtent(file, gdHeader, gd, compressed ? null : rgd, owned, tail);
    if (tail) await tail.start(extent.file, (g) => extent.loadGt(g), gd);
    return extent;
  }

  /** The GT of directory entry `g` (null when the directory has none). */
  private async loadGt(g: number): Promise<Uint32Array | null> {
    const cached = this.gts.get(g);
    if (cached) return cached;
    const sector = this.gd[g]!;
    if (sector === 0) return null;
    const at = sector * SECTOR;
    if (at + this.gtBytes > this.file.size()) {
      throw new ImageFormatError(`${this.file.filename}: VMDK grain table ${g} at sector ${sector} is past the end of the file`);
    }
    const raw = new Uint8Array(this.gtBytes);
    await this.file.read(at, raw);
    const gt = decodeEntries(raw);
    this.gts.set(g, gt);
    return gt;
  }

  private entryOf(gt: Uint32Array | null, grain: number): number {
    return gt ? gt[grain % this.header.gtEntries]! : 0;
  }

  private kindOf(entry: number): ExtentRun['kind'] {
    if (entry === 0) return RUN_UNALLOCATED;
    if (entry === 1 && this.zeroedGrains) return RUN_ZERO;
    return this.compressed ? RUN_COMPRESSED : RUN_DATA;
  }

  async lookup(offset: number, length: number): Promise<ExtentRun> {
    const grain = Math.floor(offset / this.granularity);
    const gt = await this.loadGt(Math.floor(grain / this.header.gtEntries));
    const entry = this.entryOf(gt, grain);
    const kind = this.kindOf(entry);
    // Whole grains after the first join the run while they are of its kind (stored
    // ones: in the next sectors), up to the end of the range and of the grain table.
    const limit = Math.min(offset + length, this.size);
    const tableEnd = (Math.floor(grain / this.header.gtEntries) + 1) * this.header.gtEntries;
    let next = grain + 1;
    if (kind !== RUN_COMPRESSED) {
      const step = this.header.grainSectors;
      while (next < tableEnd && next * this.granularity < limit) {
        const e = this.entryOf(gt, next);
        if (kind === RUN_DATA ? e !== entry + (next - grain) * step : this.kindOf(e) !== kind) break;
        next++;
      }
    }
    const end = Math.min(limit, next * this.granularity);
    const host = kind === RUN_DATA ? entry * SECTOR + (offset - grain * this.granularity) : -1;
    return { kind, length: end - offset, host };
  }

  async readAllocated(offset: number, buf: Uint8Array): Promise<void> {
    const grain = Math.floor(offset / this.granularity);
    const inGrain = offset - grain * this.granularity;
    const entry = this.entryOf(await this.loadGt(Math.floor(grain / this.header.gtEntries)), grain);
    if (this.compressed) {
      const data = await this.readCompressedGrain(grain, entry);
      buf.set(data.subarray(inGrain, inGrain + buf.length));
      return;
    }
    const host = entry * SECTOR + inGrain;
    const fileSize = this.file.size();
    if (host >= fileSize) {
      throw new ImageFormatError(`${this.file.filename}: VMDK grain ${grain} at sector ${entry} is past the end of the file`);
    }
    const inFile = Math.min(buf.length, fileSize - host);
    await this.file.read(host, buf.subarray(0, inFile));
    buf.fill(0, inFile);
  }

  private async readCompressedGrain(grain: number, sector: number): Promise<Uint8Array> {
    const cached = this.recentGrains.get(grain);
    if (cached && cached.sector === sector) return cached.data;
    const at = sector * SECTOR;
    const fileSize = this.file.size();
    if (at + GRAIN_MARKER_BYTES > fileSize) {
      throw new ImageFormatError(`${this.file.filename}: VMDK compressed grain ${grain} at sector ${sector} is past the end of the file`);
    }
    // One read for the marker and (almost always) the whole compressed grain after it.
    const first = new Uint8Array(Math.min(fileSize - at, GRAIN_MARKER_BYTES + this.granularity + SECTOR));
    await this.file.read(at, first);
    const length = new DataView(first.buffer).getUint32(8, true);
    if (length === 0 || length > 2 * this.granularity + 1024 || at + GRAIN_MARKER_BYTES + length > fileSize) {
      throw new ImageFormatError(`${this.file.filename}: VMDK compressed grain ${grain} has an invalid length ${length}`);
    }
    let packed = first.subarray(GRAIN_MARKER_BYTES, GRAIN_MARKER_BYTES + length);
    if (packed.length < length) {
      packed = new Uint8Array(length);
      await this.file.read(at + GRAIN_MARKER_BYTES, packed);
    }
    let out: Uint8Array;
    try {
      // An output chunk larger than a grain: one allocation, no concatenation (3x faster).
      // (Synchronous: zlib.inflate on libuv's pool measured 2x slower here.)
      out = zlib.inflateSync(packed, {
        maxOutputLength: this.granularity,
        finishFlush: zlib.constants.Z_SYNC_FLUSH,
        chunkSize: this.granularity + SECTOR,
      });
    } catch (e) {
      throw new ImageFormatError(`${this.file.filename}: VMDK compressed grain ${grain} is corrupt: ${(e as Error).message}`);
    }
    const data = new Uint8Array(this.granularity);
    data.set(out);
    if (this.recentGrains.size >= RECENT_GRAINS) this.recentGrains.delete(this.recentGrains.keys().next().value!);
    this.recentGrains.set(grain, { sector, data });
    return data;
  }

  async write(offset: number, buf: Uint8Array, below: ReadBelow): Promise<void> {
    if (this.tail) return this.writeStream(offset, buf, below);
    for (let done = 0; done < buf.length;) {
      const run = await this.lookup(offset + done, buf.length - done);
      const part = buf.subarray(done, done + run.length);
      if (run.kind === RUN_DATA) await this.file.write(run.host, part);
      else if (!(await this.allocateRun(offset + done, part, run.kind, below))) {
        // Some grains were allocated meanwhile: one grain at a time.
        for (const piece of this.grainPieces(offset + done, part.length)) {
          await this.write(piece.from, buf.subarray(piece.from - offset, piece.to - offset), below);
        }
      }
      done += run.length;
    }
  }

  /**
   * Stores `part` (at `offset`), which lies in grains of one unallocated/zero
   * `kind`, in new consecutive grains: whole grains straight from `part`, grains it
   * covers only in part merged with what they show now. False (nothing written)
   * when some of the grains got data while this waited for its turn.
   */
  private async allocateRun(offset: number, part: Uint8Array, kind: ExtentRun['kind'], below: ReadBelow): Promise<boolean> {
    const pieces = this.grainPieces(offset, part.length);
    const grains: Uint8Array[] = [];
    for (const p of pieces) {
      const bytes = part.subarray(p.from - offset, p.to - offset);
      if (bytes.length === this.granularity) grains.push(bytes);
      else {
        const whole = await this.grainContent(p.grain, kind, this.coversGrain(p.grain, p.from, bytes.length) ? null : below);
        whole.set(bytes, p.from - p.start);
        grains.push(whole);
      }
    }
    let stored = false;
    await this.serialised(async () => {
      const again = await this.lookup(offset, part.length);
      if (again.kind === RUN_DATA || again.length < part.length) return;
      const sector = this.nextSector;
      const step = this.header.grainSectors;
      this.nextSector += step * grains.length;
      await this.file.writevGrow(sector * SECTOR, grains);
      await this.setEntries(pieces[0]!.grain, Uint32Array.from(grains, (_, i) => sector + i * step));
      stored = true;
    });
    return stored;
  }

  /** True when [offset, offset+length) is all of grain `grain` (the extent's last grain may be short). */
  private coversGrain(grain: number, offset: number, length: number): boolean {
    const start = grain * this.granularity;
    return offset === start && offset + length === Math.min(start + this.granularity, this.size);
  }

  /**
   * A stream write: the grains the write covers whole are compressed at once (in
   * parallel, on libuv's pool); then, in the serialised section, grains it covers
   * only in part are merged with their current content (after every earlier write
   * has landed, so no write is lost) and compressed, and the grains are appended in
   * LBA order. Writes are appended in the order they were made, so a converter
   * writing its chunks in order gets grains in increasing LBA order, as stream
   * readers (importers that read the image front to back) expect.
   */
  private async writeStream(offset: number, buf: Uint8Array, below: ReadBelow): Promise<void> {
    const packedWhole = new Map<number, Promise<Uint8Array>>();
    for (const piece of this.grainPieces(offset, buf.length)) {
      if (piece.from === piece.start && piece.to === piece.end) {
        const packed = this.compressGrain(buf.subarray(piece.from - offset, piece.to - offset));
        packed.catch(() => {}); // awaited (and its error thrown) in the serialised section
        packedWhole.set(piece.grain, packed);
      }
    }
    await this.serialised(() => this.appendStreamGrains(offset, buf, below, packedWhole));
  }

  /** Appends the grains [offset, offset + buf.length) touches; call inside the serialised section. */
  private async appendStreamGrains(offset: number, buf: Uint8Array, below: ReadBelow, packedWhole = new Map<number, Promise<Uint8Array>>()): Promise<void> {
    for (const piece of this.grainPieces(offset, buf.length)) {
      let packed = packedWhole.get(piece.grain);
      if (!packed) {
        const run = await this.lookup(piece.from, piece.to - piece.from);
        const whole = await this.grainContent(piece.grain, run.kind, below);
        whole.set(buf.subarray(piece.from - offset, piece.to - offset), piece.from - piece.start);
        packed = this.compressGrain(whole.subarray(0, piece.end - piece.start));
      }
      const sector = await this.tail!.appendGrain(this.file, piece.start / SECTOR, await packed);
      await this.setEntry(piece.grain, sector);
    }
  }

  /** The grains [offset, offset + length) touches: each grain's bounds and the part of it inside the range. */
  private grainPieces(offset: number, length: number): { grain: number; start: number; end: number; from: number; to: number }[] {
    const pieces = [];
    const last = Math.floor((offset + length - 1) / this.granularity);
    for (let grain = Math.floor(offset / this.granularity); grain <= last; grain++) {
      const start = grain * this.granularity;
      const end = Math.min(start + this.granularity, this.size);
      pieces.push({ grain, start, end, from: Math.max(offset, start), to: Math.min(offset + length, end) });
    }
    return pieces;
  }

  private compressGrain(data: Uint8Array): Promise<Uint8Array> {
    // zlib is looked up here, not at module load: the CLI bundle loads node:zlib on first use.
    return new Promise((resolve, reject) =>
      zlib.deflate(data, { chunkSize: this.granularity + SECTOR }, (err, out) => (err ? reject(err) : resolve(out))),
    );
  }

  /** The current bytes of a grain that is not stored in place (for a merge); `below` null: not needed. */
  private async grainContent(grain: number, kind: ExtentRun['kind'], below: ReadBelow | null): Promise<Uint8Array> {
    const whole = new Uint8Array(this.granularity);
    if (below === null || kind === RUN_ZERO) return whole;
    const start = grain * this.granularity;
    const n = Math.min(this.granularity, this.size - start);
    if (kind === RUN_COMPRESSED) await this.readAllocated(start, whole.subarray(0, n));
    else await below(start, whole.subarray(0, n));
    return whole;
  }

  async writeZeroes(offset: number, length: number, below: ReadBelow, hasBacking: boolean): Promise<void> {
    if (this.tail) {
      // Decided in the serialised section, after earlier writes of the grain have landed.
      await this.serialised(async () => {
        const run = await this.lookup(offset, length);
        if (run.kind === RUN_ZERO || (run.kind === RUN_UNALLOCATED && !hasBacking)) return;
        await this.appendStreamGrains(offset, new Uint8Array(length), below);
      });
      return;
    }
    const run = await this.lookup(offset, length);
    if (run.kind === RUN_ZERO || (run.kind === RUN_UNALLOCATED && !hasBacking)) return;
    const grain = Math.floor(offset / this.granularity);
    const whole = offset === grain * this.granularity && length === this.granularity;
    if (whole && this.zeroedGrains && !this.tail) {
      await this.serialised(() => this.setEntry(grain, 1));
      return;
    }
    if (run.kind === RUN_DATA) await this.file.writeZeroes(run.host, length);
    else await this.write(offset, new Uint8Array(length), below);
  }

  private serialised(fn: () => Promise<void>): Promise<void> {
    const next = this.allocation.then(fn);
    this.allocation = next.catch(() => {});
    return next;
  }

  /** Points grain `grain`'s entry at `value`, allocating its grain table first if needed. */
  private setEntry(grain: number, value: number): Promise<void> {
    return this.setEntries(grain, Uint32Array.of(value));
  }

  /**
   * Points the entries of grains `first`, `first` + 1, ... at `values`, allocating
   * grain tables first where needed; one write per table (and its redundant copy).
   */
  private async setEntries(first: number, values: Uint32Array): Promise<void> {
    const perTable = this.header.gtEntries;
    for (let done = 0; done < values.length;) {
      const g = Math.floor((first + done) / perTable);
      const i = (first + done) % perTable;
      const n = Math.min(values.length - done, perTable - i);
      let gt = await this.loadGt(g);
      if (!gt) gt = this.tail ? this.tail.newTable(this.gts, g) : await this.allocateTable(g);
      gt.set(values.subarray(done, done + n), i);
      done += n;
      if (this.tail) continue;
      const entries = encodeEntries(gt.subarray(i, i + n));
      const copies = [this.file.write(this.gd[g]! * SECTOR + i * 4, entries)];
      if (this.rgd && this.rgd[g]! !== 0) copies.push(this.file.write(this.rgd[g]! * SECTOR + i * 4, entries));
      await Promise.all(copies);
    }
  }

  /** Allocates zeroed grain tables (primary and redundant) for directory entry `g`. */
  private async allocateTable(g: number): Promise<Uint32Array> {
    const gtSectors = Math.ceil(this.gtBytes / SECTOR);
    for (const dir of this.rgd ? [this.gd, this.rgd] : [this.gd]) {
      const sector = this.nextSector;
      this.nextSector += gtSectors;
      await this.file.writeGrow(sector * SECTOR, new Uint8Array(gtSectors * SECTOR));
      dir[g] = sector;
      const offset = (dir === this.gd ? this.header.gdOffset : this.header.rgdOffset) * SECTOR;
      await this.file.write(offset + g * 4, encodeEntry(sector));
    }
    const gt = new Uint32Array(this.header.gtEntries);
    this.gts.set(g, gt);
    return gt;
  }

  /** Every (grain, entry) of the extent's allocated grains, for check. */
  async *entries(): AsyncGenerator<{ grain: number; entry: number }> {
    for (let g = 0; g < this.gd.length; g++) {
      const gt = await this.loadGt(g);
      if (!gt) continue;
      for (let i = 0; i < gt.length; i++) if (gt[i] !== 0) yield { grain: g * this.header.gtEntries + i, entry: gt[i]! };
    }
  }

  get zeroedGrainFlag(): boolean { return this.zeroedGrains; }

  async flush(): Promise<void> {
    await this.allocation;
    if (this.tail) await this.tail.finish(this.file, this.gd, this.gts);
    await this.file.flush();
  }

  async close(): Promise<void> {
    try {
      if (this.tail) await this.flush();
    } finally {
      if (this.owned) await this.file.close();
    }
  }
}

async function readDirectory(file: ProtocolNode, sector: number, entries: number, what: string): Promise<Uint32Array> {
  const raw = new Uint8Array(entries * 4);
  if (sector * SECTOR + raw.length > file.size()) {
    throw new ImageFormatError(`${file.filename}: VMDK ${what} is past the end of the file`);
  }
  await file.read(sector * SECTOR, raw);
  return decodeEntries(raw);
}

function encodeEntry(value: number): Uint8Array {
  return encodeEntries(Uint32Array.of(value));
}
