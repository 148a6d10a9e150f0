/**
 * An open VDI image: the virtual disk in blocks (1 MiB by default), each either
 * stored in the data area (its block-map entry is the block's index there),
 * unallocated, or in the zero state; the last two read as zeroes (VDI has no
 * backing file in QEMU's reading, and neither here).
 *
 * Reads and block status take runs of blocks at once: blocks stored one after
 * another in the data area are one read (and one block-status extent), blocks
 * not stored one run of zeroes; a request's reads (readRuns: several requests')
 * go out at once, holes in the file and bytes past its end read as zeroes
 * without a read (../stored-reads.ts). Block status asks the file about holes in
 * stored blocks (QEMU reports those as zeroes too) and remembers the last data
 * extent the file named, so a run of questions inside it costs no system call.
 *
 * Writes to an allocated block go straight to its place in the file. A write to
 * a run of other blocks allocates the next blocks of the data area (appended at
 * the end and written whole with one pwritev, zeroes around the new bytes, as QEMU
 * writes them), then updates the run's block-map entries (one write) and the
 * header's allocated count together: data before the metadata that points at it
 * (a crash between the last two leaks blocks at worst, or leaves the window the
 * entry-then-count order always had).
 * Allocations are serialised; everything else may run concurrently.
 *
 * writeZeroes leaves unallocated and zero blocks as they are and zeroes the stored
 * bytes of allocated ones. discard does nothing and resize is refused, as in
 * qemu-img 7.2. Block-map entries that point past the data area's blocks are read
 * errors naming the block, never reads of another block's bytes.
 */
import {
  type BlockExtent,
  checkRange,
  ImageFormatError,
  type WriteOptions,
} from '../../node.js';
import type { ProtocolNode } from '../../protocols/protocol.js';
import { guidBytesText } from '../disk-uuid.js';
import type { ImageNode, OpenContext } from '../format.js';
import { StandaloneImageNode } from '../standalone-node.js';
import { type HostPiece, readMapped } from '../stored-reads.js';
import {
  parseVdiHeader,
  serializeVdiHeader,
  VDI_BMAP_OFFSET,
  VDI_UNALLOCATED,
  VDI_ZERO,
  type VdiHeader,
} from './header.js';

export class VdiNode extends StandaloneImageNode implements ImageNode {
  readonly driver = 'vdi';
  /** The block map (entries decoded from little-endian). */
  private readonly bmap: Uint32Array;
  /** A stretch of the file known to hold data (see fileStatus). */
  private knownData = { start: 0, end: 0 };

  private constructor(file: ProtocolNode, private readonly header: VdiHeader, bmap: Uint32Array) {
    super(file);
    this.bmap = bmap;
  }

  static async open(file: ProtocolNode, ctx: OpenContext): Promise<VdiNode> {
    const head = new Uint8Array(Math.min(VDI_BMAP_OFFSET, file.size()));
    await file.read(0, head);
    const header = parseVdiHeader(head, file.size());
    const raw = new Uint8Array(header.blocksInImage * 4);
    await file.read(header.offsetBmap, raw);
    const view = new DataView(raw.buffer);
    const bmap = new Uint32Array(header.blocksInImage);
    for (let i = 0; i < bmap.length; i++) bmap[i] = view.getUint32(i * 4, true);
    if (!ctx.readOnly) file.lockForFormat(true);
    return new VdiNode(file, header, bmap);
  }

  get granularity(): number { return this.header.blockSize; }
  get clusterSize(): number { return this.header.blockSize; }
  /** The header as opened (UUIDs, type), for check and tests. */
  get vdiHeader(): Readonly<VdiHeader> { return this.header; }
  get diskUuid(): string { return guidBytesText(this.header.uuidImage); }

  size(): number { return this.header.diskSize; }

  /** Host offset of stored block `index` (entry checked against the data area). */
  private hostOffset(block: number, entry: number): number {
    if (entry >= this.header.blocksInImage) {
      throw new ImageFormatError(`${this.filename}: VDI block ${block} points to data block ${entry}, past the image's blocks`);
    }
    return this.header.offsetData + entry * this.header.blockSize;
  }

  read(offset: number, buf: Uint8Array): Promise<void> {
    return readMapped(this, this.file, [{ offset, buf }], (o, b, host) => this.mapRead(o, b, host));
  }

  /** read() of each range, their stored bytes read together (readMapped). */
  readRuns(runs: ReadonlyArray<{ offset: number; buf: Uint8Array }>): Promise<void> {
    return readMapped(this, this.file, runs, (o, b, host) => this.mapRead(o, b, host));
  }

  /** Maps [offset, offset + buf.length) onto the file by runs (runEnd); runs not stored are filled with zeroes here. */
  private mapRead(offset: number, buf: Uint8Array, host: HostPiece[]): void {
    const bs = this.header.blockSize;
    const end = offset + buf.length;
    for (let pos = offset; pos < end;) {
      const first = Math.floor(pos / bs);
      const last = this.runEnd(first, Math.floor((end - 1) / bs));
      const part = buf.subarray(pos - offset, Math.min(end, (last + 1) * bs) - offset);
      if (this.stored(first)) host.push({ offset: this.hostOffset(first, this.bmap[first]!) + pos - first * bs, buf: part });
      else part.fill(0);
      pos += part.length;
    }
  }

  /**
   * The last block (at most `maxLast`) of the run from `first` that reads in one
   * piece: blocks stored one after another in the data area, or blocks not
   * stored. A run of stored blocks ends before an entry past the data area's
   * blocks, so that hostOffset() refuses that block on its own.
   */
  private runEnd(first: number, maxLast: number): number {
    const entry = this.bmap[first]!;
    const stored = this.stored(first);
    let last = first;
    while (last < maxLast) {
      const next = this.bmap[last + 1]!;
      const joins = stored ? next === entry + (last + 1 - first) && next < this.header.blocksInImage : !this.stored(last + 1);
      if (!joins) break;
      last++;
    }
    return last;
  }

  private stored(block: number): boolean {
    const entry = this.bmap[block]!;
    return entry !== VDI_UNALLOCATED && entry !== VDI_ZERO;
  }

  async write(offset: number, buf: Uint8Array, opts?: WriteOptions): Promise<void> {
    this.checkWritable();
    checkRange(this, this.size(), offset, buf.length);
    const bs = this.header.blockSize;
    for (let at = 0; at < buf.length;) {
      const first = Math.floor((offset + at) / bs);
      if (this.stored(first)) {
        const n = Math.min(buf.length - at, (first + 1) * bs - offset - at);
        await this.file.write(this.hostOffset(first, this.bmap[first]!) + offset + at - first * bs, buf.subarray(at, at + n), opts);
        at += n;
        continue;
      }
      let last = first;
      while ((last + 1) * bs < offset + buf.length && !this.stored(last + 1)) last++;
      const n = Math.min(buf.length - at, (last + 1) * bs - offset - at);
      const part = buf.subarray(at, at + n);
      const start = offset + at;
      await this.serialised(() => this.writeNewBlocks(start, part));
      at += n;
    }
  }

  /**
   * Stores a write to blocks that had no data when it was made: those that got
   * some while it waited are written in place, runs of the others get new blocks.
   */
  private async writeNewBlocks(offset: number, part: Uint8Array): Promise<void> {
    const bs = this.header.blockSize;
    for (let at = 0; at < part.length;) {
      const first = Math.floor((offset + at) / bs);
      let last = first;
      const isStored = this.stored(first);
      while ((last + 1) * bs < offset + part.length && this.stored(last + 1) === isStored && !isStored) last++;
      const n = Math.min(part.length - at, (last + 1) * bs - offset - at);
      if (isStored) await this.file.write(this.hostOffset(first, this.bmap[first]!) + offset + at - first * bs, part.subarray(at, at + n));
      else await this.allocateBlocks(first, last, offset + at - first * bs, part.subarray(at, at + n));
      at += n;
    }
  }

  /** Gives blocks first..last new data blocks holding `bytes` at `inFirst` in block `first`, zeroes around. */
  private async allocateBlocks(first: number, last: number, inFirst: number, bytes: Uint8Array): Promise<void> {
    const h = this.header;
    const count = last - first + 1;
    const index = h.blocksAllocated;
    if (index + count > h.blocksInImage) {
      throw new ImageFormatError(`${this.filename}: VDI image has no free data block (allocated count is corrupt)`);
    }
    const tail = count * h.blockSize - inFirst - bytes.length;
    const parts = [inFirst > 0 ? new Uint8Array(inFirst) : null, bytes, tail > 0 ? new Uint8Array(tail) : null];
    await this.file.writevGrow(h.offsetData + index * h.blockSize, parts.filter((p) => p !== null));
    const entries = new Uint8Array(count * 4);
    const view = new DataView(entries.buffer);
    for (let i = 0; i < count; i++) {
      this.bmap[first + i] = index + i;
      view.setUint32(i * 4, index + i, true);
    }
    h.blocksAllocated = index + count;
    await Promise.all([this.file.write(h.offsetBmap + first * 4, entries), this.file.write(0, serializeVdiHeader(h))]);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.checkWritable();
    checkRange(this, this.size(), offset, length);
    await this.eachBlock(offset, length, this.header.blockSize, async (block, inBlock, _at, n) => {
      const entry = this.bmap[block]!;
      if (entry === VDI_UNALLOCATED || entry === VDI_ZERO) return;
      await this.file.writeZeroes(this.hostOffset(block, entry) + inBlock, n);
    });
  }

  async blockStatus(offset: number, length: number): Promise<BlockExtent> {
    checkRange(this, this.size(), offset, length);
    const bs = this.header.blockSize;
    const first = Math.floor(offset / bs);
    const last = this.runEnd(first, Math.floor((offset + length - 1) / bs));
    let end = Math.min(offset + length, (last + 1) * bs);
    if (!this.stored(first)) {
      return { offset, length: end - offset, allocated: true, data: false, zero: true, compressed: false, hostOffset: null };
    }
    const host = this.hostOffset(first, this.bmap[first]!) + (offset - first * bs);
    // As QEMU does for stored blocks: holes in the file are data that reads as zeroes.
    const inFile = Math.min(end - offset, this.file.size() - host);
    let zero = false;
    if (inFile <= 0) zero = true;
    else if (host < this.knownData.start || host >= this.knownData.end) {
      const st = await this.fileStatus(host);
      zero = st.zero;
      end = Math.min(end, offset + st.length);
    } else {
      end = Math.min(end, offset + this.knownData.end - host);
    }
    return { offset, length: end - offset, allocated: true, data: true, zero, compressed: false, hostOffset: host };
  }

  /**
   * The file's status from `host` to its next change (data or hole) or end. A data
   * extent is remembered in knownData: bytes with data stay data for block status
   * (at worst they become zeroes that read as zeroes), so later questions about
   * the same stretch need no system calls. Holes are asked again each time.
   */
  private async fileStatus(host: number): Promise<BlockExtent> {
    const st = await this.file.blockStatus(host, this.file.size() - host);
    if (!st.zero) this.knownData = { start: host, end: host + st.length };
    return st;
  }

  /** The block map entries (read-only view) for check. */
  blockMap(): Readonly<Uint32Array> { return this.bmap; }
}

