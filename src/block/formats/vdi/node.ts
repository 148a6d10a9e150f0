/**
 * An open VDI image: the virtual disk in blocks (1 MiB by default), each either
 * stored in the data area (its block-map entry is the block's index there),
 * unallocated, or in the zero state; the last two read as zeroes (VDI has no
 * backing file in QEMU's reading, and neither here).
 *
 * Writes to an allocated block go straight to its place in the file. A write to
 * any other block allocates the next block of the data area (appended at the end
 * and written whole, zeroes around the new bytes, as QEMU writes it), then updates
 * the block-map entry, then the header's allocated count: data before the
 * metadata that points at it.
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
import type { ImageNode, OpenContext } from '../format.js';
import { StandaloneImageNode } from '../standalone-node.js';
import {
  parseVdiHeader,
  serializeVdiHeader,
  VDI_BMAP_OFFSET,
  VDI_UNALLOCATED,
  VDI_ZERO,
  type VdiHeader,
  vdiUuidText,
} from './header.js';

export class VdiNode extends StandaloneImageNode implements ImageNode {
  readonly driver = 'vdi';
  /** The block map (entries decoded from little-endian). */
  private readonly bmap: Uint32Array;

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
  get diskUuid(): string { return vdiUuidText(this.header.uuidImage); }

  size(): number { return this.header.diskSize; }

  /** Host offset of stored block `index` (entry checked against the data area). */
  private hostOffset(block: number, entry: number): number {
    if (entry >= this.header.blocksInImage) {
      throw new ImageFormatError(`${this.filename}: VDI block ${block} points to data block ${entry}, past the image's blocks`);
    }
    return this.header.offsetData + entry * this.header.blockSize;
  }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    checkRange(this, this.size(), offset, buf.length);
    await this.eachBlock(offset, buf.length, this.header.blockSize, async (block, inBlock, at, n) => {
      const entry = this.bmap[block]!;
      const part = buf.subarray(at, at + n);
      if (entry === VDI_UNALLOCATED || entry === VDI_ZERO) part.fill(0);
      else await this.file.read(this.hostOffset(block, entry) + inBlock, part);
    });
  }

  async write(offset: number, buf: Uint8Array, opts?: WriteOptions): Promise<void> {
    this.checkWritable();
    checkRange(this, this.size(), offset, buf.length);
    await this.eachBlock(offset, buf.length, this.header.blockSize, async (block, inBlock, at, n) => {
      const part = buf.subarray(at, at + n);
      const entry = this.bmap[block]!;
      if (entry !== VDI_UNALLOCATED && entry !== VDI_ZERO) {
        await this.file.write(this.hostOffset(block, entry) + inBlock, part, opts);
      } else {
        await this.serialised(() => this.writeNewBlock(block, inBlock, part));
      }
    });
  }

  /** Stores a write to a block that has no data yet (or got some while this one waited). */
  private async writeNewBlock(block: number, inBlock: number, part: Uint8Array): Promise<void> {
    const existing = this.bmap[block]!;
    if (existing !== VDI_UNALLOCATED && existing !== VDI_ZERO) {
      await this.file.write(this.hostOffset(block, existing) + inBlock, part);
      return;
    }
    const h = this.header;
    const index = h.blocksAllocated;
    if (index >= h.blocksInImage) {
      throw new ImageFormatError(`${this.filename}: VDI image has no free data block (allocated count is corrupt)`);
    }
    const whole =
      inBlock === 0 && part.length === h.blockSize
        ? [part]
        : [new Uint8Array(inBlock), part, new Uint8Array(h.blockSize - inBlock - part.length)];
    await this.file.writevGrow(h.offsetData + index * h.blockSize, whole);
    this.bmap[block] = index;
    const entryBytes = new Uint8Array(4);
    new DataView(entryBytes.buffer).setUint32(0, index, true);
    await this.file.write(h.offsetBmap + block * 4, entryBytes);
    h.blocksAllocated = index + 1;
    await this.file.write(0, serializeVdiHeader(h));
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
    const entry = this.bmap[first];
    const stored = entry !== undefined && entry !== VDI_UNALLOCATED && entry !== VDI_ZERO;
    let end = Math.min(offset + length, (first + 1) * bs);
    for (let b = first + 1; end < offset + length; b++) {
      const next = this.bmap[b]!;
      const nextStored = next !== VDI_UNALLOCATED && next !== VDI_ZERO;
      if (nextStored !== stored || (stored && next !== entry! + (b - first))) break;
      end = Math.min(offset + length, (b + 1) * bs);
    }
    const host = stored ? this.hostOffset(first, entry!) + (offset - first * bs) : null;
    let zero = !stored;
    if (host !== null) {
      // As QEMU does for stored blocks: holes in the file are data that reads as zeroes.
      const inFile = Math.min(end - offset, this.file.size() - host);
      if (inFile <= 0) zero = true;
      else {
        const st = await this.file.blockStatus(host, inFile);
        zero = st.zero;
        end = offset + st.length;
      }
    }
    return { offset, length: end - offset, allocated: true, data: stored, zero, compressed: false, hostOffset: host };
  }

  /** The block map entries (read-only view) for check. */
  blockMap(): Readonly<Uint32Array> { return this.bmap; }
}

