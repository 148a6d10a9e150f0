/**
 * The stream-optimized layout's tail (VMware Virtual Disk Format 1.1): grains are
 * written one after another as a grain marker (LBA u64, compressed length u32)
 * followed by the deflate stream, padded to a sector; then each grain table behind
 * a GT marker, the grain directory behind a GD marker, a footer marker followed by
 * a copy of the header that holds the real directory offset, and an end-of-stream
 * marker (a zero sector). Metadata markers are (sectors that follow u64, 0 u32,
 * type u32) padded to a sector. The header at the start says "directory at the end".
 *
 * StreamTail is the writer's state for an opened stream image: where the next grain
 * goes (after the last grain, so rewriting the tail replaces the old metadata) and
 * whether anything changed since the tail was last written. Images whose directory
 * is at the front (as qemu-img writes them) get the tail layout on their first
 * change. readStreamFooter finds the directory of an image that has it at the end.
 */
import { ImageFormatError } from '../../node.js';
import type { ProtocolNode } from '../../protocols/protocol.js';
import {
  encodeEntries,
  FLAG_RGD,
  GD_AT_END,
  parseSparseHeader,
  SECTOR,
  serializeSparseHeader,
  type SparseHeader,
} from './sparse-header.js';

const MARKER_EOS = 0;
const MARKER_GT = 1;
const MARKER_GD = 2;
const MARKER_FOOTER = 3;

function markerSector(sectors: number, type: number): Uint8Array {
  const buf = new Uint8Array(SECTOR);
  const v = new DataView(buf.buffer);
  v.setUint32(0, sectors, true);
  v.setUint32(12, type, true);
  return buf;
}

/** The header copy in the footer of a stream image whose start header says "directory at the end". */
export async function readStreamFooter(file: ProtocolNode, header: SparseHeader): Promise<SparseHeader> {
  const size = file.size();
  if (size < 3 * SECTOR + header.overhead * SECTOR) {
    throw new ImageFormatError(`${file.filename}: VMDK stream is truncated (no footer)`);
  }
  const tail = new Uint8Array(3 * SECTOR);
  await file.read(size - tail.length, tail);
  const v = new DataView(tail.buffer);
  if (v.getUint32(8, true) !== 0 || v.getUint32(12, true) !== MARKER_FOOTER) {
    throw new ImageFormatError(`${file.filename}: VMDK stream has no footer marker (truncated or unfinished image?)`);
  }
  if (tail.subarray(2 * SECTOR).some((b) => b !== 0)) {
    throw new ImageFormatError(`${file.filename}: VMDK stream has no end-of-stream marker`);
  }
  const footer = parseSparseHeader(tail.subarray(SECTOR, 2 * SECTOR), size);
  if (footer.gdOffset === GD_AT_END) throw new ImageFormatError(`${file.filename}: VMDK footer has no grain directory offset`);
  return { ...header, gdOffset: footer.gdOffset, rgdOffset: 0 };
}

export class StreamTail {
  /** Byte offset where the next grain goes. */
  private appendAt = 0;
  private dirty = false;
  private frontHeaderDone = false;
  private readonly header: SparseHeader;

  constructor(header: SparseHeader) {
    this.header = { ...header, flags: header.flags & ~FLAG_RGD };
  }

  /** The tail state of a new, empty stream image whose metadata starts at its overhead. */
  static empty(header: SparseHeader): StreamTail {
    const tail = new StreamTail(header);
    tail.appendAt = header.overhead * SECTOR;
    tail.dirty = true;
    return tail;
  }

  /** Finds the end of the last grain (loading every grain table through `loadGt`). */
  async start(file: ProtocolNode, loadGt: (g: number) => Promise<Uint32Array | null>, gd: Uint32Array): Promise<void> {
    let last = 0;
    for (let g = 0; g < gd.length; g++) {
      const gt = await loadGt(g);
      if (gt) for (const e of gt) if (e > last) last = e;
    }
    this.appendAt = this.header.overhead * SECTOR;
    if (last > 0 && last * SECTOR + 12 <= file.size()) {
      const marker = new Uint8Array(12);
      await file.read(last * SECTOR, marker);
      const end = last * SECTOR + 12 + new DataView(marker.buffer).getUint32(8, true);
      this.appendAt = Math.max(this.appendAt, Math.ceil(end / SECTOR) * SECTOR);
    }
  }

  /** Appends one compressed grain for virtual sector `lba`; returns its sector. */
  async appendGrain(file: ProtocolNode, lba: number, packed: Uint8Array): Promise<number> {
    const at = this.appendAt;
    const buf = new Uint8Array(Math.ceil((12 + packed.length) / SECTOR) * SECTOR);
    const v = new DataView(buf.buffer);
    v.setUint32(0, lba % 2 ** 32, true);
    v.setUint32(4, Math.floor(lba / 2 ** 32), true);
    v.setUint32(8, packed.length, true);
    buf.set(packed, 12);
    this.appendAt += buf.length;
    this.dirty = true;
    await file.writeGrow(at, buf);
    return at / SECTOR;
  }

  newTable(gts: Map<number, Uint32Array>, g: number): Uint32Array {
    const gt = new Uint32Array(this.header.gtEntries);
    gts.set(g, gt);
    return gt;
  }

  /** Writes tables, directory, footer and end-of-stream after the grains, if anything changed. */
  async finish(file: ProtocolNode, gd: Uint32Array, gts: Map<number, Uint32Array>): Promise<void> {
    if (!this.dirty) return;
    const parts: Uint8Array[] = [];
    let sector = this.appendAt / SECTOR;
    const push = (buf: Uint8Array) => {
      parts.push(buf);
      sector += buf.length / SECTOR;
    };
    const gtSectors = Math.ceil((this.header.gtEntries * 4) / SECTOR);
    for (let g = 0; g < gd.length; g++) {
      const gt = gts.get(g);
      if (!gt || !gt.some((e) => e !== 0)) {
        gd[g] = 0;
        continue;
      }
      push(markerSector(gtSectors, MARKER_GT));
      gd[g] = sector;
      push(padded(encodeEntries(gt), gtSectors));
    }
    const gdSectors = Math.ceil((gd.length * 4) / SECTOR);
    push(markerSector(gdSectors, MARKER_GD));
    const gdSector = sector;
    push(padded(encodeEntries(gd), gdSectors));
    push(markerSector(1, MARKER_FOOTER));
    push(serializeSparseHeader({ ...this.header, gdOffset: gdSector, rgdOffset: 0 }));
    push(markerSector(0, MARKER_EOS));
    await file.writevGrow(this.appendAt, parts);
    const end = sector * SECTOR;
    if (file.size() > end) await file.truncate(end, { shrink: true });
    if (!this.frontHeaderDone) {
      await file.write(0, serializeSparseHeader({ ...this.header, gdOffset: GD_AT_END, rgdOffset: 0 }));
      this.frontHeaderDone = true;
    }
    this.dirty = false;
  }
}

function padded(buf: Uint8Array, sectors: number): Uint8Array {
  const out = new Uint8Array(sectors * SECTOR);
  out.set(buf);
  return out;
}
