/**
 * An open VHD (vpc) image: fixed, dynamic or differencing.
 *
 * Fixed: the disk is the file's first bytes, the footer follows them.
 * Dynamic: the footer copy at 0 leads to the dynamic header and the block
 * allocation table (BAT); a block is its sector bitmap (one bit per sector,
 * most significant bit first, padded to a sector) followed by its data.
 * Unallocated blocks read as zeroes. Like QEMU, reads do not consult the bitmap
 * of an allocated block.
 *
 * Differencing: laid out like a dynamic disk, with a parent (the backing file,
 * named by the parent locators, parent.ts; it must be a VHD whose unique id is
 * the one the child records; its time stamp is not compared, since copying a
 * parent changes it). Here the bitmap decides: a sector whose bit is
 * clear, and every sector of an unallocated block, reads from the parent. Writes
 * are serialised; they write whole sectors (a partial sector is completed from
 * what it showed before), the data first and then the bitmap bits that make it
 * visible. writeZeroes writes zeroes (the parent must not show through).
 * Bitmaps of allocated blocks are cached once read.
 *
 * A write to an unallocated block appends the block where the footer was (its
 * bitmap, then the written bytes; the rest of the block is a hole), writes the
 * footer again after it, and only then points the BAT entry at it: data before
 * the metadata that points at it. New blocks of dynamic disks have every bitmap
 * bit set. Allocations are serialised. writeZeroes on a dynamic disk leaves
 * unallocated blocks alone; discard does nothing and resize is refused, as in
 * qemu-img 7.2. BAT entries pointing past the end of the file are read errors.
 */
import {
  type BlockExtent,
  type BlockNode,
  checkRange,
  ImageFormatError,
} from '../../node.js';
import type { ProtocolNode } from '../../protocols/protocol.js';
import type { ImageNode, OpenContext } from '../format.js';
import { StandaloneImageNode } from '../standalone-node.js';
import { uuidText } from '../disk-uuid.js';
import {
  BAT_UNALLOCATED,
  DISK_DIFFERENCING,
  DISK_FIXED,
  DYN_HEADER_BYTES,
  type DynHeader,
  FOOTER_BYTES,
  isFooter,
  parseDynHeader,
  parseFooter,
  UNIQUE_ID_AT,
  virtualSize,
  type VhdFooter,
} from './footer.js';
import { parentFileName } from './parent.js';

/** What a differencing disk knows of its parent. */
interface Parent {
  /** The backing file name (parent.ts). */
  name: string;
  uniqueId: string;
}

const SECTOR = 512;

export class VpcNode extends StandaloneImageNode implements ImageNode {
  readonly driver = 'vpc';
  private readonly bitmapBytes: number;
  private backingNode: BlockNode | null = null;
  /** Differencing disks: sector bitmaps of allocated blocks, by block. */
  private readonly bitmaps = new Map<number, Uint8Array>();

  private constructor(
    file: ProtocolNode,
    /** The footer's bytes, written again after each new block. */
    private readonly footerBytes: Uint8Array,
    /** The footer as parsed (geometry, creator and size, for differencing children). */
    readonly footer: VhdFooter,
    private readonly diskSize: number,
    private readonly dyn: DynHeader | null,
    private readonly bat: Uint32Array | null,
    /** Where the next block goes (the end-of-file footer's place). */
    private nextBlock: number,
    private readonly parent: Parent | null,
  ) {
    super(file);
    this.bitmapBytes = dyn ? Math.ceil(dyn.blockSize / SECTOR / 8 / SECTOR) * SECTOR : 0;
  }

  static async open(file: ProtocolNode, ctx: OpenContext): Promise<VpcNode> {
    const size = file.size();
    if (size < FOOTER_BYTES) throw new ImageFormatError('The image is not a VHD (shorter than a footer)');
    let raw = new Uint8Array(FOOTER_BYTES);
    await file.read(0, raw);
    if (!isFooter(raw)) await file.read(size - FOOTER_BYTES, raw);
    const footer = parseFooter(raw);
    const disk = virtualSize(footer);
    if (!ctx.readOnly) file.lockForFormat(true);
    const end = Math.ceil((size - FOOTER_BYTES) / SECTOR) * SECTOR;
    if (footer.diskType === DISK_FIXED) {
      if (disk > size - FOOTER_BYTES) throw new ImageFormatError(`invalid VHD: fixed disk of ${disk} bytes in a file of ${size}`);
      return new VpcNode(file, raw, footer, disk, null, null, end, null);
    }
    if (footer.dataOffset < 0 || footer.dataOffset + DYN_HEADER_BYTES > size) {
      throw new ImageFormatError('invalid VHD: dynamic disk header is past the end of the file');
    }
    const dynRaw = new Uint8Array(DYN_HEADER_BYTES);
    await file.read(footer.dataOffset, dynRaw);
    const dyn = parseDynHeader(dynRaw, size, footer.diskType === DISK_DIFFERENCING);
    if (dyn.maxTableEntries * dyn.blockSize < disk) {
      throw new ImageFormatError(`invalid VHD: ${dyn.maxTableEntries} table entries cannot map ${disk} bytes`);
    }
    raw = new Uint8Array(dyn.maxTableEntries * 4);
    await file.read(dyn.tableOffset, raw);
    const view = new DataView(raw.buffer);
    const bat = new Uint32Array(dyn.maxTableEntries);
    for (let i = 0; i < bat.length; i++) bat[i] = view.getUint32(i * 4);
    const footerBytes = new Uint8Array(FOOTER_BYTES);
    await file.read(0, footerBytes);
    const parent = dyn.parent ? { name: await parentFileName(file, dyn.parent), uniqueId: uuidText(dyn.parent.uniqueId) } : null;
    return new VpcNode(file, footerBytes, footer, disk, dyn, bat, end, parent);
  }

  get granularity(): number { return this.dyn?.blockSize ?? SECTOR; }
  get clusterSize(): number | undefined { return this.dyn?.blockSize; }
  get diskUuid(): string { return uuidText(this.footerBytes.subarray(UNIQUE_ID_AT, UNIQUE_ID_AT + 16)); }
  override get backing(): BlockNode | null { return this.backingNode; }
  override get backingFilename(): string | null { return this.parent?.name ?? null; }
  override get backingFormat(): string | null { return this.parent ? 'vpc' : null; }

  override attachBacking(node: BlockNode | null): void {
    if (!this.parent) {
      super.attachBacking(node);
      return;
    }
    const id = node && (node as ImageNode).diskUuid;
    if (node && node.driver === 'vpc' && id !== this.parent.uniqueId) {
      throw new Error(
        `${this.filename}: the parent's unique id ${id} is not ${this.parent.uniqueId}, the one this differencing disk records (the parent was replaced?)`,
      );
    }
    this.backingNode = node;
  }

  size(): number { return this.diskSize; }

  /** Host offset of byte `inBlock` of block `block` (null: unallocated). */
  private hostOf(block: number, inBlock: number): number | null {
    const entry = this.bat![block]!;
    if (entry === BAT_UNALLOCATED) return null;
    const host = entry * SECTOR + this.bitmapBytes + inBlock;
    if (host >= this.file.size()) {
      throw new ImageFormatError(`${this.filename}: VHD block ${block} at sector ${entry} is past the end of the file`);
    }
    return host;
  }

  /** Reads stored bytes; past the end of the file (a block's unwritten tail) reads zeroes. */
  private async readStored(host: number, part: Uint8Array): Promise<void> {
    const inFile = Math.max(0, Math.min(part.length, this.file.size() - host));
    await this.file.read(host, part.subarray(0, inFile));
    part.fill(0, inFile);
  }

  /** What shows below a differencing disk at `offset`: the parent's bytes, zeroes past its end. */
  private async readBelow(offset: number, part: Uint8Array): Promise<void> {
    const b = this.backingNode;
    const n = b ? Math.max(0, Math.min(part.length, b.size() - offset)) : 0;
    if (n > 0) await b!.read(offset, part.subarray(0, n));
    part.fill(0, n);
  }

  /** The sector bitmap of allocated block `block` (differencing disks). */
  private async bitmapOf(block: number): Promise<Uint8Array> {
    let bitmap = this.bitmaps.get(block);
    if (!bitmap) {
      bitmap = new Uint8Array(this.bitmapBytes);
      this.hostOf(block, 0);
      await this.readStored(this.bat![block]! * SECTOR, bitmap);
      this.bitmaps.set(block, bitmap);
    }
    return bitmap;
  }

  /** Sectors from `first` (inside one block) that share the bit of `first`, up to `limit` sectors. */
  private static run(bitmap: Uint8Array, first: number, limit: number): { set: boolean; sectors: number } {
    const bit = (s: number) => (bitmap[s >> 3]! & (0x80 >> (s & 7))) !== 0;
    const set = bit(first);
    let n = 1;
    while (n < limit && bit(first + n) === set) n++;
    return { set, sectors: n };
  }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    checkRange(this, this.size(), offset, buf.length);
    if (!this.dyn) return this.file.read(offset, buf);
    await this.eachBlock(offset, buf.length, this.dyn.blockSize, async (block, inBlock, at, n) => {
      const part = buf.subarray(at, at + n);
      const host = this.hostOf(block, inBlock);
      if (host === null) {
        if (this.parent) await this.readBelow(offset + at, part);
        else part.fill(0);
        return;
      }
      if (!this.parent) return this.readStored(host, part);
      const bitmap = await this.bitmapOf(block);
      for (let done = 0; done < n;) {
        const sector = Math.floor((inBlock + done) / SECTOR);
        const sectorEnd = Math.ceil((inBlock + n) / SECTOR);
        const r = VpcNode.run(bitmap, sector, sectorEnd - sector);
        const len = Math.min(n - done, (sector + r.sectors) * SECTOR - (inBlock + done));
        const piece = part.subarray(done, done + len);
        if (r.set) await this.readStored(host + done, piece);
        else await this.readBelow(offset + at + done, piece);
        done += len;
      }
    });
  }

  async write(offset: number, buf: Uint8Array): Promise<void> {
    this.checkWritable();
    checkRange(this, this.size(), offset, buf.length);
    if (!this.dyn) return this.file.write(offset, buf);
    if (this.parent) return this.serialised(() => this.writeDifferencing(offset, buf));
    await this.eachBlock(offset, buf.length, this.dyn.blockSize, async (block, inBlock, at, n) => {
      const part = buf.subarray(at, at + n);
      const host = this.hostOf(block, inBlock);
      if (host !== null) await this.file.writeGrow(host, part);
      else await this.serialised(() => this.writeNewBlock(block, inBlock, part));
    });
  }

  private async writeNewBlock(block: number, inBlock: number, part: Uint8Array): Promise<void> {
    const again = this.hostOf(block, inBlock);
    if (again !== null) {
      await this.file.writeGrow(again, part);
      return;
    }
    await this.appendBlock(block, new Uint8Array(this.bitmapBytes).fill(0xff), inBlock, part);
  }

  /** Appends block `block` (its bitmap, then `part` at `inBlock`), the footer after it, then points the BAT at it. */
  private async appendBlock(block: number, bitmap: Uint8Array, inBlock: number, part: Uint8Array): Promise<void> {
    const at = this.nextBlock;
    const blockEnd = at + this.bitmapBytes + this.dyn!.blockSize;
    await this.file.writeGrow(at, bitmap);
    await this.file.writeGrow(at + this.bitmapBytes + inBlock, part);
    await this.file.writeGrow(blockEnd, this.footerBytes);
    this.nextBlock = blockEnd;
    const entry = new Uint8Array(4);
    new DataView(entry.buffer).setUint32(0, at / SECTOR);
    await this.file.write(this.dyn!.tableOffset + block * 4, entry);
    this.bat![block] = at / SECTOR;
  }

  /** A differencing write (serialised): whole sectors, data before the bitmap bits. */
  private async writeDifferencing(offset: number, buf: Uint8Array): Promise<void> {
    await this.eachBlock(offset, buf.length, this.dyn!.blockSize, async (block, inBlock, at, n) => {
      const first = Math.floor(inBlock / SECTOR);
      const end = Math.ceil((inBlock + n) / SECTOR);
      const whole = new Uint8Array((end - first) * SECTOR);
      const blockStart = offset + at - inBlock;
      // Partial first and last sectors keep what they showed before.
      for (const s of new Set([first, end - 1])) {
        const cut = s * SECTOR;
        if (cut >= inBlock && cut + SECTOR <= inBlock + n) continue;
        await this.read(blockStart + cut, whole.subarray(cut - first * SECTOR, cut - first * SECTOR + SECTOR));
      }
      whole.set(buf.subarray(at, at + n), inBlock - first * SECTOR);
      const allocated = this.bat![block] !== BAT_UNALLOCATED;
      const bitmap = allocated ? await this.bitmapOf(block) : new Uint8Array(this.bitmapBytes);
      for (let s = first; s < end; s++) bitmap[s >> 3]! |= 0x80 >> (s & 7);
      if (!allocated) {
        await this.appendBlock(block, bitmap, first * SECTOR, whole);
        this.bitmaps.set(block, bitmap);
        return;
      }
      const blockAt = this.bat![block]! * SECTOR;
      await this.file.writeGrow(blockAt + this.bitmapBytes + first * SECTOR, whole);
      await this.file.write(blockAt, bitmap);
    });
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.checkWritable();
    checkRange(this, this.size(), offset, length);
    if (!this.dyn) return this.file.writeZeroes(offset, length);
    if (this.parent) {
      const zeroes = new Uint8Array(Math.min(length, this.dyn.blockSize));
      for (let at = 0; at < length; at += zeroes.length) await this.write(offset + at, zeroes.subarray(0, Math.min(zeroes.length, length - at)));
      return;
    }
    await this.eachBlock(offset, length, this.dyn.blockSize, async (block, inBlock, _at, n) => {
      const host = this.hostOf(block, inBlock);
      if (host !== null) await this.file.writeZeroes(host, Math.min(n, this.file.size() - host));
    });
  }

  async blockStatus(offset: number, length: number): Promise<BlockExtent> {
    checkRange(this, this.size(), offset, length);
    if (!this.dyn) {
      const st = await this.file.blockStatus(offset, length);
      return { ...st, allocated: true, data: true, hostOffset: offset };
    }
    if (this.parent) return this.differencingStatus(offset, length);
    const bs = this.dyn.blockSize;
    const first = Math.floor(offset / bs);
    const host = this.hostOf(first, offset - first * bs);
    let end = Math.min(offset + length, (first + 1) * bs);
    for (let b = first + 1; end < offset + length; b++) {
      const h = this.hostOf(b, 0);
      if ((h === null) !== (host === null) || (host !== null && h !== host + (b * bs - offset))) break;
      end = Math.min(offset + length, (b + 1) * bs);
    }
    const stored = host !== null;
    return { offset, length: end - offset, allocated: true, data: stored, zero: !stored, compressed: false, hostOffset: host };
  }

  /** Status inside one block of a differencing disk: a run of sectors this disk holds or defers to the parent. */
  private async differencingStatus(offset: number, length: number): Promise<BlockExtent> {
    const bs = this.dyn!.blockSize;
    const block = Math.floor(offset / bs);
    const inBlock = offset - block * bs;
    let len = Math.min(length, bs - inBlock);
    const host = this.hostOf(block, inBlock);
    let own = host !== null;
    if (host !== null) {
      const sector = Math.floor(inBlock / SECTOR);
      const r = VpcNode.run(await this.bitmapOf(block), sector, Math.ceil((inBlock + len) / SECTOR) - sector);
      own = r.set;
      len = Math.min(len, (sector + r.sectors) * SECTOR - inBlock);
    }
    const below = this.backingNode ? this.backingNode.size() : 0;
    if (!own && offset < below) len = Math.min(len, below - offset);
    return {
      offset, length: len, allocated: own, data: own, zero: !own && offset >= below, compressed: false, hostOffset: own ? host : null,
    };
  }
}
