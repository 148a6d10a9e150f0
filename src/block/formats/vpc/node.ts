/**
 * An open VHD (vpc) image, fixed or dynamic.
 *
 * Fixed: the disk is the file's first bytes, the footer follows them.
 * Dynamic: the footer copy at 0 leads to the dynamic header and the block
 * allocation table (BAT); a block is its sector bitmap (one bit per sector,
 * padded to a sector) followed by its data. Unallocated blocks read as zeroes.
 * Like QEMU, reads do not consult the bitmap of an allocated block.
 *
 * A write to an unallocated block appends the block where the footer was (bitmap
 * all ones, then the written bytes; the rest of the block is a hole), writes the
 * footer again after it, and only then points the BAT entry at it: data before
 * the metadata that points at it. Allocations are serialised. writeZeroes leaves
 * unallocated blocks alone; discard does nothing and resize is refused, as in
 * qemu-img 7.2. BAT entries pointing past the end of the file are read errors.
 */
import {
  type BlockExtent,
  checkRange,
  ImageFormatError,
} from '../../node.js';
import type { ProtocolNode } from '../../protocols/protocol.js';
import type { ImageNode, OpenContext } from '../format.js';
import { StandaloneImageNode } from '../standalone-node.js';
import { uuidText } from '../disk-uuid.js';
import {
  BAT_UNALLOCATED,
  DISK_DYNAMIC,
  DYN_HEADER_BYTES,
  type DynHeader,
  FOOTER_BYTES,
  isFooter,
  parseDynHeader,
  parseFooter,
  UNIQUE_ID_AT,
  virtualSize,
} from './footer.js';

export class VpcNode extends StandaloneImageNode implements ImageNode {
  readonly driver = 'vpc';
  private readonly bitmapBytes: number;

  private constructor(
    file: ProtocolNode,
    /** The footer's bytes, written again after each new block. */
    private readonly footerBytes: Uint8Array,
    private readonly diskSize: number,
    private readonly dyn: DynHeader | null,
    private readonly bat: Uint32Array | null,
    /** Where the next block goes (the end-of-file footer's place). */
    private nextBlock: number,
  ) {
    super(file);
    this.bitmapBytes = dyn ? Math.ceil(dyn.blockSize / 512 / 8 / 512) * 512 : 0;
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
    const end = Math.ceil((size - FOOTER_BYTES) / 512) * 512;
    if (footer.diskType !== DISK_DYNAMIC) {
      if (disk > size - FOOTER_BYTES) throw new ImageFormatError(`invalid VHD: fixed disk of ${disk} bytes in a file of ${size}`);
      return new VpcNode(file, raw, disk, null, null, end);
    }
    if (footer.dataOffset < 0 || footer.dataOffset + DYN_HEADER_BYTES > size) {
      throw new ImageFormatError('invalid VHD: dynamic disk header is past the end of the file');
    }
    const dynRaw = new Uint8Array(DYN_HEADER_BYTES);
    await file.read(footer.dataOffset, dynRaw);
    const dyn = parseDynHeader(dynRaw, size);
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
    return new VpcNode(file, footerBytes, disk, dyn, bat, end);
  }

  get granularity(): number { return this.dyn?.blockSize ?? 512; }
  get clusterSize(): number | undefined { return this.dyn?.blockSize; }
  get diskUuid(): string { return uuidText(this.footerBytes.subarray(UNIQUE_ID_AT, UNIQUE_ID_AT + 16)); }

  size(): number { return this.diskSize; }

  /** Host offset of byte `inBlock` of block `block` (null: unallocated). */
  private hostOf(block: number, inBlock: number): number | null {
    const entry = this.bat![block]!;
    if (entry === BAT_UNALLOCATED) return null;
    const host = entry * 512 + this.bitmapBytes + inBlock;
    if (host >= this.file.size()) {
      throw new ImageFormatError(`${this.filename}: VHD block ${block} at sector ${entry} is past the end of the file`);
    }
    return host;
  }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    checkRange(this, this.size(), offset, buf.length);
    if (!this.dyn) return this.file.read(offset, buf);
    await this.eachBlock(offset, buf.length, this.dyn.blockSize, async (block, inBlock, at, n) => {
      const part = buf.subarray(at, at + n);
      const host = this.hostOf(block, inBlock);
      if (host === null) {
        part.fill(0);
        return;
      }
      const inFile = Math.min(n, this.file.size() - host);
      await this.file.read(host, part.subarray(0, inFile));
      part.fill(0, inFile);
    });
  }

  async write(offset: number, buf: Uint8Array): Promise<void> {
    this.checkWritable();
    checkRange(this, this.size(), offset, buf.length);
    if (!this.dyn) return this.file.write(offset, buf);
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
    const at = this.nextBlock;
    const blockEnd = at + this.bitmapBytes + this.dyn!.blockSize;
    await this.file.writeGrow(at, new Uint8Array(this.bitmapBytes).fill(0xff));
    await this.file.writeGrow(at + this.bitmapBytes + inBlock, part);
    await this.file.writeGrow(blockEnd, this.footerBytes);
    this.nextBlock = blockEnd;
    const entry = new Uint8Array(4);
    new DataView(entry.buffer).setUint32(0, at / 512);
    await this.file.write(this.dyn!.tableOffset + block * 4, entry);
    this.bat![block] = at / 512;
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.checkWritable();
    checkRange(this, this.size(), offset, length);
    if (!this.dyn) return this.file.writeZeroes(offset, length);
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
}
