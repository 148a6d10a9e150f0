/**
 * An open VHDX image, dynamic or fixed.
 *
 * Open: the file identifier, the current header (layout.ts), then the log: a
 * LogGuid in the header with an active sequence behind it means an unclean
 * shutdown. A writable open replays it and clears the LogGuid (logReplayed says
 * so, for check); a read-only open refuses, as QEMU does, and names the command
 * that replays it. Then the region table (table 2 when table 1 is damaged; a
 * writable open then repairs table 1 from it), the metadata and the BAT. A
 * stored block past the end of the file, inside the metadata or sharing its place
 * with another block makes the open fail (check reports them instead). Differencing images are refused, naming the
 * parent their locator gives.
 *
 * Reads: blocks not stored (NOT_PRESENT, UNDEFINED, ZERO, UNMAPPED) read as
 * zeroes; stored ones are read at their offset (a block's tail past the end of
 * the file reads as zeroes, holes in the file are not read: ../stored-reads.ts), a
 * run of blocks stored one after another as one piece, and all of a request's
 * pieces (readRuns: of several requests) at once. Writes: stored blocks are written in place (a run of them at once).
 * Any other block is allocated: a ZERO or UNMAPPED block that keeps a
 * preallocated offset in the data area is written there (the rest of the block
 * zeroed, as its old bytes may be anything); otherwise a run of such blocks
 * goes at the end of the file (1 MiB aligned), the file grown sparse to the
 * run's end and the data written as given, with one request. Allocations run
 * concurrently; a write to a block another write is allocating uses the same
 * place. Only once a block's data is written does its BAT entry change (in
 * memory); the changed BAT sectors reach the file through the log (journal.ts)
 * on flush(), on close, and whenever many are pending. A crash before that
 * loses the unflushed blocks (their space leaks), never the image's consistency.
 *
 * Like QEMU 7.2, which gives VHDX no block-status function, blockStatus reports
 * every range as allocated data (img map prints what qemu-img prints);
 * copyStatus, which copies use, reports blocks not stored and the file's holes
 * in stored ones as zeroes, so convert neither reads nor scans them. writeZeroes
 * leaves blocks that are not stored as they are and zeroes stored bytes; discard
 * does nothing and resize is refused.
 */
import { type BlockExtent, checkRange, ImageFormatError } from '../../node.js';
import type { ProtocolNode } from '../../protocols/protocol.js';
import type { ImageNode, OpenContext } from '../format.js';
import { StandaloneImageNode } from '../standalone-node.js';
import {
  Bat,
  BAT_SECTOR,
  type BatGeometry,
  batGeometry,
  BLOCK_FULLY_PRESENT,
  BLOCK_PARTIALLY_PRESENT,
  BLOCK_UNMAPPED,
  BLOCK_ZERO,
  payloadIndex,
  readsAsZero,
} from './bat.js';
import { VhdxJournal } from './journal.js';
import {
  checkRegions,
  currentHeader,
  HEADER_BYTES,
  HEADER_OFFSETS,
  isVhdx,
  MiB,
  parseRegionTable,
  type Region,
  REGION_TABLE_BYTES,
  REGION_TABLE_OFFSETS,
  ZERO_GUID,
} from './layout.js';
import { findActiveSequence, readLog, replaySequence } from './log.js';
import { parseMetadata, type VhdxMetadata } from './metadata.js';
import { type HostPiece, readMapped } from '../stored-reads.js';

/** Dirty BAT sectors that trigger a commit without waiting for flush. */
const COMMIT_THRESHOLD = 64;
const MAX_METADATA_REGION = 64 * MiB;
/**
 * The granularity advertised: writes of any size cost no read-modify-write (a new
 * block is grown sparse around them), so callers such as convert may skip zero
 * runs at page size instead of writing whole blocks.
 */
const GRANULARITY = 4096;

/** A stored block's start offset that is past the end of the file, as QEMU words it. */
function pastEndMessage(index: number, offset: number, fileSize: number): string {
  return `VHDX BAT entry ${index} start offset ${offset} points after end of file (${fileSize}). Image has probably been truncated.`;
}

export interface VhdxParts {
  /** Header updates and BAT commits (it holds the current header). */
  journal: VhdxJournal;
  bat: Region;
  metadataRegion: Region;
  meta: VhdxMetadata;
  geometry: BatGeometry;
  table: Bat;
  logReplayed: boolean;
}

/** Reads and checks everything but the BAT entries' targets; replays the log when writable. */
export async function readVhdx(file: ProtocolNode, readOnly: boolean): Promise<VhdxParts> {
  const size = file.size();
  const id = new Uint8Array(Math.min(8, size));
  await file.read(0, id);
  if (!isVhdx(id)) throw new ImageFormatError('The image is not a VHDX (no "vhdxfile" identifier)');
  if (size < MiB) throw new ImageFormatError('invalid VHDX: the file is shorter than its header area (truncated image?)');
  const slots = await Promise.all(HEADER_OFFSETS.map(async (at) => {
    const b = new Uint8Array(HEADER_BYTES);
    await file.read(at, b);
    return b;
  }));
  const { header, slot } = currentHeader(slots);
  const journal = new VhdxJournal(file, header, slot);
  const log = { offset: header.logOffset, length: header.logLength };
  if (log.offset < MiB || log.offset % MiB !== 0 || log.length % MiB !== 0) {
    throw new ImageFormatError(`invalid VHDX: log at ${log.offset} of ${log.length} bytes is not aligned to 1 MiB`);
  }
  if (log.offset + log.length > size) throw new ImageFormatError('invalid VHDX: the log is past the end of the file');
  let logReplayed = false;
  if (header.logGuid !== ZERO_GUID && log.length > 0) {
    const active = findActiveSequence(await readLog(file, log.offset, log.length), header.logGuid);
    if (active.length > 0) {
      if (readOnly) {
        throw new ImageFormatError(
          `VHDX image file '${file.filename}' opened read-only, but contains a log that needs to be replayed\n` +
            `To replay the log, run:\ntsemu img check -r all '${file.filename}'`,
        );
      }
      await replaySequence(file, active, log);
      logReplayed = true;
    }
    if (!readOnly) await journal.end();
  }
  const { regions, copy } = await readRegionTable(file);
  const { bat, metadata: metadataRegion } = checkRegions(regions, log, file.size());
  if (metadataRegion.length > MAX_METADATA_REGION) {
    throw new ImageFormatError(`unsupported VHDX: metadata region of ${metadataRegion.length} bytes`);
  }
  const mdBytes = new Uint8Array(metadataRegion.length);
  await file.read(metadataRegion.offset, mdBytes);
  const meta = parseMetadata(mdBytes);
  if (meta.hasParent) {
    const parent = meta.parentLocator?.get('relative_path') ?? meta.parentLocator?.get('absolute_win32_path') ?? '?';
    throw new ImageFormatError(`unsupported VHDX: differencing images are not supported (parent '${parent}')`);
  }
  const geometry = batGeometry(meta.diskSize, meta.blockSize, meta.logicalSectorSize, meta.hasParent);
  if (geometry.entries * 8 > bat.length) {
    throw new ImageFormatError(`invalid VHDX: the BAT region holds ${bat.length / 8} entries, the disk needs ${geometry.entries}`);
  }
  const table = new Uint8Array(Math.ceil((geometry.entries * 8) / BAT_SECTOR) * BAT_SECTOR);
  await file.read(bat.offset, table);
  if (copy && !readOnly) {
    // Readers such as QEMU read table 1 only: repair it from table 2.
    await file.write(REGION_TABLE_OFFSETS[0], copy);
    await file.flush();
  }
  return { journal, bat, metadataRegion, meta, geometry, table: new Bat(table), logReplayed };
}

/** Region table 1, or table 2 when table 1 is damaged (then `copy` is table 2's bytes, for repairing table 1). */
async function readRegionTable(file: ProtocolNode): Promise<{ regions: Region[]; copy: Uint8Array | null }> {
  const reasons: string[] = [];
  for (const [slot, at] of REGION_TABLE_OFFSETS.entries()) {
    const b = new Uint8Array(REGION_TABLE_BYTES);
    await file.read(at, b);
    const parsed = parseRegionTable(b);
    if (typeof parsed !== 'string') return { regions: parsed, copy: slot === 0 ? null : b };
    reasons.push(parsed);
  }
  throw new ImageFormatError(`invalid VHDX: no valid region table (table 1: ${reasons[0]}; table 2: ${reasons[1]})`);
}

/** Calls fn for each stored payload block (FULLY or PARTIALLY_PRESENT) with its entry index and offset. */
export function eachStoredBlock(p: VhdxParts, fn: (index: number, offset: number) => void): void {
  for (let block = 0; block < p.geometry.payloadBlocks; block++) {
    const index = payloadIndex(p.geometry, block);
    const state = p.table.state(index);
    if (state === BLOCK_FULLY_PRESENT || state === BLOCK_PARTIALLY_PRESENT) fn(index, p.table.offset(index));
  }
}

/**
 * What is wrong with the stored blocks' places, one line each: a start past the
 * end of the file (QEMU's words), a place inside the header area, log, BAT or
 * metadata region, or a place another block also uses.
 */
export function storedBlockProblems(p: VhdxParts, fileSize: number): string[] {
  const bs = p.meta.blockSize;
  const h = p.journal.current;
  const metadata = [
    { name: 'the header area', offset: 0, length: MiB },
    { name: 'the log', offset: h.logOffset, length: h.logLength },
    { name: 'the BAT', offset: p.bat.offset, length: p.bat.length },
    { name: 'the metadata region', offset: p.metadataRegion.offset, length: p.metadataRegion.length },
  ];
  const problems: string[] = [];
  const owners = new Map<number, number>();
  eachStoredBlock(p, (index, offset) => {
    const clash = metadata.find((s) => offset < s.offset + s.length && s.offset < offset + bs);
    const other = owners.get(offset);
    if (offset >= fileSize) problems.push(pastEndMessage(index, offset, fileSize));
    else if (clash) problems.push(`VHDX BAT entry ${index} offset ${offset} overlaps ${clash.name}`);
    else if (other !== undefined) problems.push(`VHDX BAT entries ${other} and ${index} both point to offset ${offset}`);
    else owners.set(offset, index);
  });
  return problems;
}

/** The end of the file or of the last stored block, whichever is further (new blocks go there). */
function storedEnd(p: VhdxParts, fileSize: number): number {
  let end = fileSize;
  eachStoredBlock(p, (_index, offset) => {
    end = Math.max(end, offset + p.meta.blockSize);
  });
  return end;
}

/** A block that a write in flight is allocating: its place, and when its BAT entry is set (rejected if that write failed). */
interface Allocation {
  at: number;
  /** When other writes may go to the place (the file covers it, and no zeroing is left to overwrite them). */
  ready: Promise<void>;
  done: Promise<void>;
}

export class VhdxNode extends StandaloneImageNode implements ImageNode {
  readonly driver = 'vhdx';
  private readonly bat: Bat;
  /** Blocks whose allocation is in flight. */
  private readonly allocating = new Map<number, Allocation>();
  /** Where the next block at the end of the file goes. */
  private fileEnd: number;
  /** Start of the data area: past the header area, log, BAT and metadata. */
  private readonly dataStart: number;

  private constructor(file: ProtocolNode, private readonly parts: VhdxParts) {
    super(file);
    this.bat = parts.table;
    this.fileEnd = Math.ceil(storedEnd(parts, file.size()) / MiB) * MiB;
    const h = parts.journal.current;
    this.dataStart = Math.max(
      h.logOffset + h.logLength,
      parts.bat.offset + parts.bat.length,
      parts.metadataRegion.offset + parts.metadataRegion.length,
    );
  }

  static async open(file: ProtocolNode, ctx: OpenContext): Promise<VhdxNode> {
    if (!ctx.readOnly) file.lockForFormat(true);
    const parts = await readVhdx(file, ctx.readOnly);
    const problems = storedBlockProblems(parts, file.size());
    if (problems.length > 0) throw new ImageFormatError(problems[0]!);
    return new VhdxNode(file, parts);
  }

  get blockSize(): number { return this.parts.meta.blockSize; }
  get granularity(): number { return GRANULARITY; }
  get clusterSize(): number { return this.blockSize; }
  get diskUuid(): string { return this.parts.meta.diskId; }
  /** Whether opening replayed a log (check reports it as a fixed corruption). */
  get logReplayed(): boolean { return this.parts.logReplayed; }
  get metadata(): Readonly<VhdxMetadata> { return this.parts.meta; }

  size(): number { return this.parts.meta.diskSize; }

  /** Host offset of stored block `block` (null: not stored, reads as zeroes). */
  private stored(block: number): number | null {
    const index = payloadIndex(this.parts.geometry, block);
    const state = this.bat.state(index);
    if (state === BLOCK_FULLY_PRESENT) return this.bat.offset(index);
    if (state === BLOCK_PARTIALLY_PRESENT) {
      throw new ImageFormatError(`${this.filename}: VHDX block ${block} is partially present, which only differencing images may use`);
    }
    if (!readsAsZero(state)) throw new ImageFormatError(`${this.filename}: VHDX block ${block} has invalid state ${state}`);
    return null;
  }

  /**
   * Calls fn, in order, for each run of blocks that [offset, offset+length)
   * touches: a run goes on from its first block while `joins(first, next)` holds
   * for the block after it. fn gets the run's blocks, the offset in the first
   * one, and the run's piece of the request (`at`, `n`).
   */
  private async eachRun(
    offset: number,
    length: number,
    joins: (first: number, next: number) => boolean,
    fn: (first: number, last: number, inFirst: number, at: number, n: number) => Promise<void>,
  ): Promise<void> {
    const bs = this.blockSize;
    const maxLast = Math.floor((offset + length - 1) / bs);
    for (let at = 0; at < length;) {
      const first = Math.floor((offset + at) / bs);
      const last = runLast(first, maxLast, joins);
      const n = Math.min(length - at, (last + 1) * bs - offset - at);
      await fn(first, last, offset + at - first * bs, at, n);
      at += n;
    }
  }

  /** Whether `next` continues the run from `first`: both stored, one after the other in the file. */
  private storedAfter(first: number, next: number): boolean {
    const host = this.stored(first);
    return host !== null && this.stored(next) === host + (next - first) * this.blockSize;
  }

  /** Whether `next` continues a read's run from `first`: both not stored, or stored one after the other. */
  private readonly readJoins = (first: number, next: number): boolean =>
    this.stored(first) === null ? this.stored(next) === null : this.storedAfter(first, next);

  read(offset: number, buf: Uint8Array): Promise<void> {
    return readMapped(this, this.file, [{ offset, buf }], (o, b, host) => this.mapRead(o, b, host));
  }

  /** read() of each range, their stored bytes read together (readMapped). */
  readRuns(runs: ReadonlyArray<{ offset: number; buf: Uint8Array }>): Promise<void> {
    return readMapped(this, this.file, runs, (o, b, host) => this.mapRead(o, b, host));
  }

  /**
   * Maps [offset, offset + buf.length) onto the file: a run of blocks stored one
   * after another becomes one host piece, a run of blocks not stored is filled
   * with zeroes here.
   */
  private mapRead(offset: number, buf: Uint8Array, host: HostPiece[]): void {
    const bs = this.blockSize;
    const end = offset + buf.length;
    const maxLast = Math.floor((end - 1) / bs);
    for (let pos = offset; pos < end;) {
      const first = Math.floor(pos / bs);
      const part = buf.subarray(pos - offset, Math.min(end, (runLast(first, maxLast, this.readJoins) + 1) * bs) - offset);
      const at = this.stored(first);
      if (at === null) part.fill(0);
      else host.push({ offset: at + pos - first * bs, buf: part });
      pos += part.length;
    }
  }

  async write(offset: number, buf: Uint8Array): Promise<void> {
    this.checkWritable();
    checkRange(this, this.size(), offset, buf.length);
    await this.parts.journal.beginSession();
    // Runs: stored blocks one after the other in the file, or new blocks for the end of the file.
    const joins = (first: number, next: number) =>
      this.stored(first) !== null ? this.storedAfter(first, next) : this.isFresh(first) && this.isFresh(next);
    await this.eachRun(offset, buf.length, joins, async (first, last, inFirst, at, n) => {
      const part = buf.subarray(at, at + n);
      const host = this.stored(first);
      const pending = this.allocating.get(first);
      const kept = host === null && pending === undefined ? this.keptPlace(first) : null;
      if (host !== null) await this.file.writeGrow(host + inFirst, part);
      else if (pending !== undefined) await this.writeAllocating(pending, inFirst, part);
      else if (kept !== null) await this.allocate(first, first, kept, null, () => this.fillKeptPlace(kept, inFirst, part));
      else await this.appendBlocks(first, last, inFirst, part);
    });
    if (this.bat.dirtyCount() >= COMMIT_THRESHOLD) await this.serialised(() => this.parts.journal.commitBat(this.bat, this.parts.bat.offset));
  }

  /**
   * The place a ZERO or UNMAPPED block kept in the data area (a fixed image's,
   * or one given back), which a write stores the block in again; null if none.
   */
  private keptPlace(block: number): number | null {
    const index = payloadIndex(this.parts.geometry, block);
    const state = this.bat.state(index);
    if (state !== BLOCK_ZERO && state !== BLOCK_UNMAPPED) return null;
    const kept = this.bat.offset(index);
    return kept >= this.dataStart && kept + this.blockSize <= this.file.size() ? kept : null;
  }

  /** Not stored, not being allocated, and with no kept place: a new block goes at the end of the file. */
  private isFresh(block: number): boolean {
    return this.stored(block) === null && !this.allocating.has(block) && this.keptPlace(block) === null;
  }

  /**
   * Gives blocks first..last places at the end of the file (consecutive, so the
   * write is one request) and stores `part` there at `inFirst`. The file is first
   * grown sparse to the run's end, so the rest of the blocks reads as zeroes.
   * Growths run one after another in the order of their runs, and every write
   * into a run waits for its growth: so none can shrink the file under a write.
   */
  private appendBlocks(first: number, last: number, inFirst: number, part: Uint8Array): Promise<void> {
    const at = this.fileEnd;
    const end = at + (last - first + 1) * this.blockSize;
    this.fileEnd = end;
    const grown = this.serialised(async () => {
      if (this.file.size() < end) await this.file.truncate(end);
    });
    return this.allocate(first, last, at, grown, async () => {
      await grown;
      await this.file.writeGrow(at + inFirst, part);
    });
  }

  /** Stores `part` at `inBlock` of a kept place, zeroing the rest of the block (its old bytes may be anything). */
  private async fillKeptPlace(at: number, inBlock: number, part: Uint8Array): Promise<void> {
    const bs = this.blockSize;
    if (inBlock > 0) await this.file.writeZeroes(at, inBlock);
    await this.file.write(at + inBlock, part);
    if (inBlock + part.length < bs) await this.file.writeZeroes(at + inBlock + part.length, bs - inBlock - part.length);
  }

  /**
   * Runs `store`, which writes blocks first..last at `at` onwards, and then sets
   * their BAT entries (in memory; commitBat logs them later, so an entry never
   * names a block before its data is written). Until then the blocks are listed
   * in `allocating`: other writes to them go to the same place once `ready`
   * (null: once the whole allocation is done) and complete after it.
   */
  private allocate(first: number, last: number, at: number, ready: Promise<void> | null, store: () => Promise<void>): Promise<void> {
    const bs = this.blockSize;
    const forget = () => {
      for (let b = first; b <= last; b++) this.allocating.delete(b);
    };
    const done = store().then(
      () => {
        for (let b = first; b <= last; b++) this.bat.set(payloadIndex(this.parts.geometry, b), BLOCK_FULLY_PRESENT, at + (b - first) * bs);
        forget();
      },
      (e: unknown) => {
        forget();
        throw e;
      },
    );
    for (let b = first; b <= last; b++) this.allocating.set(b, { at: at + (b - first) * bs, ready: ready ?? done, done });
    return done;
  }

  /**
   * A write to a block that another write is allocating: it goes to the same
   * place when that is ready, and completes only once the block's entry is set
   * (an acknowledged write's block must be in the table the next flush commits).
   */
  private async writeAllocating(pending: Allocation, inBlock: number, part: Uint8Array): Promise<void> {
    await pending.ready;
    await this.file.writeGrow(pending.at + inBlock, part);
    await pending.done;
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.checkWritable();
    checkRange(this, this.size(), offset, length);
    await this.eachBlock(offset, length, this.blockSize, async (block, inBlock, _at, n) => {
      const host = this.stored(block);
      if (host === null) return;
      await this.parts.journal.beginSession();
      const inFile = Math.min(n, this.file.size() - (host + inBlock));
      if (inFile > 0) await this.file.writeZeroes(host + inBlock, inFile);
    });
  }

  async blockStatus(offset: number, length: number): Promise<BlockExtent> {
    checkRange(this, this.size(), offset, length);
    return { offset, length, allocated: true, data: true, zero: false, compressed: false, hostOffset: null };
  }

  /** blockStatus, with blocks not stored and holes in stored ones reported as zeroes. */
  async copyStatus(offset: number, length: number): Promise<BlockExtent> {
    checkRange(this, this.size(), offset, length);
    const bs = this.blockSize;
    const block = Math.floor(offset / bs);
    const at = this.stored(block);
    const extent = (n: number, zero: boolean): BlockExtent => ({ offset, length: n, allocated: true, data: true, zero, compressed: false, hostOffset: null });
    const n = Math.min(length, (block + 1) * bs - offset);
    if (at === null) return extent(n, true);
    const host = at + offset - block * bs;
    const inFile = Math.min(n, this.file.size() - host);
    if (inFile <= 0 || this.file.driver !== 'file') return extent(n, inFile <= 0);
    const st = await this.file.blockStatus(host, inFile);
    return extent(st.length, st.zero);
  }

  override async flush(): Promise<void> {
    if (!this.readOnly) await this.serialised(() => this.parts.journal.commitBat(this.bat, this.parts.bat.offset));
    await this.file.flush();
  }

  override async close(): Promise<void> {
    try {
      if (!this.readOnly) {
        await this.serialised(() => this.parts.journal.commitBat(this.bat, this.parts.bat.offset));
        await this.parts.journal.end();
      }
    } finally {
      await this.file.close();
    }
  }
}

/** The last block of the run from `first` (at most `maxLast`): it goes on while `joins(first, next)` holds. */
function runLast(first: number, maxLast: number, joins: (first: number, next: number) => boolean): number {
  let last = first;
  while (last < maxLast && joins(first, last + 1)) last++;
  return last;
}
