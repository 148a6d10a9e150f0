/**
 * An open VMDK image: a descriptor (embedded in a sparse extent's header area, or a
 * text file of its own) and its extents laid end to end (extent.ts, sparse.ts).
 * Reads of unallocated grains fall through to the backing image that the
 * descriptor's parentFileNameHint names (always a VMDK, as in QEMU); attaching it
 * checks the chain rule that the child's parentCID equals the parent's CID, so a
 * parent changed after the child was made is an error, not silent corruption.
 *
 * The first change after open gives the image a new random CID (written into the
 * descriptor in place), as VMware and QEMU do, so children of the old content no
 * longer match. discard does nothing and resize is refused, as in qemu-img 7.2.
 * `img info` gets QEMU's vmdk block: cid, parent-cid, create-type and one entry
 * per extent.
 */
import { randomInt } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import {
  type BlockExtent,
  type BlockNode,
  checkRange,
  settleAll,
  ImageFormatError,
  type ZeroOptions,
} from '../../node.js';
import { openProtocol } from '../../protocols/index.js';
import type { ProtocolNode } from '../../protocols/protocol.js';
import type { FormatSpecificInfo, ImageNode, OpenContext } from '../format.js';
import {
  type Descriptor,
  type ExtentLine,
  MAX_DESCRIPTOR_BYTES,
  NO_PARENT_CID,
  parseDescriptor,
  setCid,
} from './descriptor.js';
import {
  type Extent,
  type ExtentRun,
  FlatExtent,
  RUN_COMPRESSED,
  RUN_DATA,
  RUN_UNALLOCATED,
  RUN_ZERO,
  ZeroExtent,
} from './extent.js';
import { COWD_MAGIC, KDMV_MAGIC, parseSparseHeader, SECTOR, sparseMagic } from './sparse-header.js';
import { SparseExtent } from './sparse.js';

/** Where the descriptor text lives, for rewriting its CID. */
type DescriptorPlace = { embedded: true; offset: number; capacity: number } | { embedded: false };

interface PlacedExtent {
  start: number;
  extent: Extent;
  /** As qemu-img info names it. */
  infoName: string;
  infoFormat: string;
}

export class VmdkNode implements ImageNode {
  readonly driver = 'vmdk';
  readonly dirtyFlag = false;
  private backingNode: BlockNode | null = null;
  private cidUpdate: Promise<void> | null = null;
  private readonly totalSize: number;

  private constructor(
    readonly file: ProtocolNode,
    private readonly descriptor: Descriptor,
    private descriptorText: string,
    private readonly place: DescriptorPlace,
    private readonly extents: PlacedExtent[],
  ) {
    const last = extents[extents.length - 1];
    this.totalSize = last ? last.start + last.extent.size : 0;
  }

  static async open(file: ProtocolNode, ctx: OpenContext): Promise<VmdkNode> {
    const head = new Uint8Array(Math.min(SECTOR, file.size()));
    await file.read(0, head);
    const magic = sparseMagic(head);
    const opened: PlacedExtent[] = [];
    try {
      if (magic === KDMV_MAGIC || magic === COWD_MAGIC) {
        const header = parseSparseHeader(head, file.size());
        let text = '';
        if (header.descriptorSize > 0) {
          const bytes = Math.min(header.descriptorSize * SECTOR, MAX_DESCRIPTOR_BYTES);
          if (header.descriptorOffset * SECTOR + bytes > file.size()) {
            throw new ImageFormatError('VMDK embedded descriptor is past the end of the file');
          }
          const raw = new Uint8Array(bytes);
          await file.read(header.descriptorOffset * SECTOR, raw);
          const nul = raw.indexOf(0);
          text = new TextDecoder('latin1').decode(nul < 0 ? raw : raw.subarray(0, nul));
        }
        // An extent of a split image opened alone has an empty descriptor area.
        const descriptor: Descriptor = text.trim() !== '' ? parseDescriptor(text) : {
          version: 1,
          cid: NO_PARENT_CID,
          parentCid: NO_PARENT_CID,
          createType: magic === KDMV_MAGIC ? 'monolithicSparse' : 'vmfsSparse',
          parentFileNameHint: null,
          extents: [],
          uuidImage: null,
        };
        if (!ctx.readOnly) file.lockForFormat(true);
        const extent = await SparseExtent.open(file, header, false);
        opened.push({ start: 0, extent, infoName: file.filename, infoFormat: '' });
        const place: DescriptorPlace = { embedded: true, offset: header.descriptorOffset * SECTOR, capacity: header.descriptorSize * SECTOR };
        return new VmdkNode(file, descriptor, text, place, opened);
      }
      if (file.size() > MAX_DESCRIPTOR_BYTES) throw new ImageFormatError('not a VMDK image (no sparse header, too large for a descriptor)');
      const raw = new Uint8Array(file.size());
      await file.read(0, raw);
      // Descriptor files may be padded with NULs after the text (qemu-img pads them when it updates the CID).
      const nul = raw.indexOf(0);
      if (nul >= 0 && raw.subarray(nul).some((b) => b !== 0)) {
        throw new ImageFormatError('not a VMDK image (neither a sparse header nor a text descriptor)');
      }
      const text = new TextDecoder('latin1').decode(nul < 0 ? raw : raw.subarray(0, nul));
      const descriptor = parseDescriptor(text);
      if (descriptor.extents.length === 0) throw new ImageFormatError('invalid VMDK descriptor: no extents');
      let start = 0;
      for (const line of descriptor.extents) {
        const extent = await openExtent(file, line, ctx);
        opened.push({ start, extent, infoName: extentPath(file.filename, line.filename), infoFormat: line.type });
        start += extent.size;
      }
      if (!ctx.readOnly) file.lockForFormat(true);
      return new VmdkNode(file, descriptor, text, { embedded: false }, opened);
    } catch (e) {
      for (const p of opened) await p.extent.close().catch(() => {});
      throw e;
    }
  }

  get filename(): string { return this.file.filename; }
  get readOnly(): boolean { return this.file.readOnly; }
  get backing(): BlockNode | null { return this.backingNode; }
  get backingFilename(): string | null { return this.descriptor.parentFileNameHint; }
  get backingFormat(): string | null { return this.descriptor.parentFileNameHint !== null ? 'vmdk' : null; }
  get granularity(): number { return this.extents[0]?.extent.granularity ?? SECTOR; }
  get clusterSize(): number | undefined {
    const first = this.extents[0]?.extent;
    return first instanceof SparseExtent ? first.granularity : undefined;
  }
  get cid(): number { return this.descriptor.cid; }
  get diskUuid(): string | undefined { return this.descriptor.uuidImage ?? undefined; }
  get parentCid(): number { return this.descriptor.parentCid; }
  /** The sparse extents (for check). */
  sparseExtents(): SparseExtent[] {
    return this.extents.map((p) => p.extent).filter((e): e is SparseExtent => e instanceof SparseExtent);
  }

  attachBacking(node: BlockNode | null): void {
    if (node instanceof VmdkNode && node.cid !== this.descriptor.parentCid) {
      throw new Error(
        `${this.filename}: parent CID ${this.descriptor.parentCid.toString(16)} does not match the CID ` +
          `${node.cid.toString(16)} of '${node.filename}' (the parent changed after this image was made)`,
      );
    }
    this.backingNode = node;
  }

  size(): number { return this.totalSize; }

  /** Calls fn for each piece of the range that lies in one extent. */
  private async eachExtent(
    offset: number,
    length: number,
    fn: (p: PlacedExtent, inExtent: number, at: number, n: number) => Promise<void>,
  ): Promise<void> {
    let i = this.extentIndex(offset);
    for (let at = 0; at < length; i++) {
      const p = this.extents[i]!;
      const inExtent = offset + at - p.start;
      const n = Math.min(length - at, p.extent.size - inExtent);
      if (n > 0) await fn(p, inExtent, at, n);
      at += Math.max(n, 0);
    }
  }

  private extentIndex(offset: number): number {
    let lo = 0;
    let hi = this.extents.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.extents[mid]!.start <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** What shows below this image at `offset`: the backing image's bytes, zeroes past its end. */
  private async readBelow(offset: number, buf: Uint8Array): Promise<void> {
    const b = this.backingNode;
    const inBacking = b ? Math.max(0, Math.min(buf.length, b.size() - offset)) : 0;
    if (inBacking > 0) await b!.read(offset, buf.subarray(0, inBacking));
    buf.fill(0, inBacking);
  }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    checkRange(this, this.size(), offset, buf.length);
    // The runs are read concurrently (compressed grains inflate in parallel).
    const reads: Promise<void>[] = [];
    await this.eachExtent(offset, buf.length, async (p, inExtent, at, n) => {
      for (let done = 0; done < n;) {
        const run = await p.extent.lookup(inExtent + done, n - done);
        const part = buf.subarray(at + done, at + done + run.length);
        if (run.kind === RUN_UNALLOCATED) reads.push(this.readBelow(p.start + inExtent + done, part));
        else if (run.kind === RUN_ZERO) part.fill(0);
        else reads.push(p.extent.readAllocated(inExtent + done, part));
        done += run.length;
      }
    });
    await settleAll(reads);
  }

  async write(offset: number, buf: Uint8Array): Promise<void> {
    this.checkWritable();
    checkRange(this, this.size(), offset, buf.length);
    await this.updateCid();
    await this.eachExtent(offset, buf.length, (p, inExtent, at, n) =>
      p.extent.write(inExtent, buf.subarray(at, at + n), (o, b) => this.readBelow(p.start + o, b)),
    );
  }

  async writeZeroes(offset: number, length: number, _opts?: ZeroOptions): Promise<void> {
    this.checkWritable();
    checkRange(this, this.size(), offset, length);
    await this.updateCid();
    const hasBacking = this.backingNode !== null;
    await this.eachExtent(offset, length, async (p, inExtent, _at, n) => {
      for (let done = 0; done < n;) {
        const step = Math.min(n - done, p.extent.granularity - ((inExtent + done) % p.extent.granularity));
        const piece = p.extent instanceof FlatExtent ? n - done : step;
        await p.extent.writeZeroes(inExtent + done, piece, (o, b) => this.readBelow(p.start + o, b), hasBacking);
        done += piece;
      }
    });
  }

  async discard(offset: number, length: number): Promise<void> {
    this.checkWritable();
    checkRange(this, this.size(), offset, length);
  }

  /** Gives the image a new CID before its first change, so children of the old content stop matching. */
  private updateCid(): Promise<void> {
    // One promise for every caller: writes made together resume in the order they were made.
    this.cidUpdate ??= this.writeNewCid();
    return this.cidUpdate;
  }

  private async writeNewCid(): Promise<void> {
    let cid = randomInt(0, 2 ** 32 - 1);
    if (cid === this.descriptor.cid) cid ^= 1;
    if (this.descriptorText === '') return;
    const text = setCid(this.descriptorText, cid);
    const bytes = new TextEncoder().encode(text);
    if (this.place.embedded) {
      if (bytes.length > this.place.capacity) return;
      const area = new Uint8Array(Math.max(bytes.length, new TextEncoder().encode(this.descriptorText).length));
      area.set(bytes);
      await this.file.write(this.place.offset, area);
    } else {
      await this.file.writeGrow(0, bytes);
      if (this.file.size() > bytes.length) await this.file.truncate(bytes.length, { shrink: true });
    }
    this.descriptorText = text;
    this.descriptor.cid = cid;
  }

  async flush(): Promise<void> {
    for (const p of this.extents) await p.extent.flush();
    await this.file.flush();
  }

  async blockStatus(offset: number, length: number): Promise<BlockExtent> {
    checkRange(this, this.size(), offset, length);
    const p = this.extents[this.extentIndex(offset)]!;
    const inExtent = offset - p.start;
    const limit = Math.min(length, p.extent.size - inExtent);
    const first = await p.extent.lookup(inExtent, limit);
    let len = first.length;
    while (len < limit) {
      const next: ExtentRun = await p.extent.lookup(inExtent + len, limit - len);
      const contiguous = first.kind !== RUN_DATA || next.host === first.host + len;
      if (next.kind !== first.kind || !contiguous) break;
      len += next.length;
    }
    let zero = first.kind === RUN_ZERO;
    if (first.kind === RUN_DATA) {
      // As QEMU does for stored data: holes in the extent's file are data that reads as zeroes.
      const file = p.extent.file!;
      const inFile = Math.min(len, file.size() - first.host);
      if (inFile <= 0) zero = true;
      else {
        const st = await file.blockStatus(first.host, inFile);
        zero = st.zero;
        len = st.length;
      }
    }
    if (first.kind === RUN_UNALLOCATED) {
      const backingSize = this.backingNode ? this.backingNode.size() : 0;
      if (offset >= backingSize) zero = true;
      else len = Math.min(len, backingSize - offset);
    }
    return {
      offset,
      length: len,
      allocated: first.kind !== RUN_UNALLOCATED,
      data: first.kind === RUN_DATA || first.kind === RUN_COMPRESSED,
      zero,
      compressed: first.kind === RUN_COMPRESSED,
      hostOffset: first.kind === RUN_DATA ? first.host : null,
    };
  }

  async truncate(): Promise<void> {
    throw new Error('Image format driver does not support resize');
  }

  /** The descriptor's file and every extent file; -1 (unknown) when any of them cannot tell. */
  async allocatedSize(): Promise<number> {
    const files = new Set<ProtocolNode>([this.file]);
    for (const p of this.extents) if (p.extent.file) files.add(p.extent.file);
    let total = 0;
    for (const f of files) {
      const n = await f.allocatedSize();
      if (n < 0) return -1;
      total += n;
    }
    return total;
  }

  formatSpecific(): FormatSpecificInfo {
    return {
      type: 'vmdk',
      data: {
        cid: this.descriptor.cid,
        'parent-cid': this.descriptor.parentCid,
        'create-type': this.descriptor.createType,
        extents: this.extents.map((p) => {
          const e = p.extent;
          const info: Record<string, unknown> = { filename: p.infoName, format: p.infoFormat, 'virtual-size': e.size };
          if (e instanceof SparseExtent) {
            info['cluster-size'] = e.granularity;
            if (e.compressed) info.compressed = true;
          }
          return info;
        }),
      },
    };
  }

  async close(): Promise<void> {
    let failure: unknown = null;
    for (const p of this.extents) await p.extent.close().catch((e: unknown) => { failure ??= e; });
    await this.file.close();
    if (failure) throw failure;
  }

  private checkWritable(): void {
    if (this.readOnly) throw new Error(`${this.filename}: the image is opened read-only`);
  }
}

/** An extent's file name as QEMU combines it with the descriptor's name (no normalisation). */
function extentPath(descriptorName: string, name: string): string {
  if (path.isAbsolute(name)) return name;
  const slash = descriptorName.lastIndexOf('/');
  return slash < 0 ? name : descriptorName.slice(0, slash + 1) + name;
}

async function openExtent(descriptorFile: ProtocolNode, line: ExtentLine, ctx: OpenContext): Promise<Extent> {
  const size = line.sectors * SECTOR;
  if (line.type === 'ZERO') return new ZeroExtent(size);
  const readOnly = ctx.readOnly || line.access !== 'RW';
  const name = extentPath(descriptorFile.filename, line.filename);
  // A FIFO, socket or character device would block or stream forever: extents are files or disks.
  const st = await stat(name).catch(() => null);
  if (st && !st.isFile() && !st.isBlockDevice()) {
    throw new ImageFormatError(`${name}: a VMDK extent must be a regular file or a block device`);
  }
  const file = await openProtocol(name, { readOnly, forceShare: readOnly && descriptorFile.forceShare });
  try {
    if (line.type === 'FLAT' || line.type === 'VMFS') return new FlatExtent(file, size, line.offset * SECTOR, true);
    const head = new Uint8Array(Math.min(SECTOR, file.size()));
    await file.read(0, head);
    const header = parseSparseHeader(head, file.size());
    if (header.capacity !== line.sectors) {
      throw new ImageFormatError(`${name}: VMDK extent holds ${header.capacity} sectors, the descriptor says ${line.sectors}`);
    }
    if (!readOnly) file.lockForFormat(true);
    return await SparseExtent.open(file, header, true);
  } catch (e) {
    await file.close();
    throw e;
  }
}
