/**
 * Serialises an FdtTree into a version-17 device tree blob.
 *
 * Layout: header, memory reservation block (8-byte aligned, right after the
 * header), structure block, strings block, in that order with nothing in
 * between, as dtc lays blobs out. Property names are stored once in the
 * strings block (a name used by many properties shares one entry), in the
 * order the structure block first meets them. Nodes and properties keep their
 * insertion order.
 */
import {
  FDT_BEGIN_NODE,
  FDT_END,
  FDT_END_NODE,
  FDT_HEADER,
  FDT_HEADER_SIZE,
  FDT_LAST_COMP_VERSION,
  FDT_MAGIC,
  FDT_PROP,
  FDT_VERSION,
  align4,
} from './fdt-format.js';
import { type FdtNode, type FdtTree, u64Cells } from './fdt-node.js';

const utf8 = new TextEncoder();

/** A growable big-endian byte sink. */
class ByteSink {
  private bytes = new Uint8Array(4096);
  private view = new DataView(this.bytes.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.length + n) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
    this.view = new DataView(grown.buffer);
  }

  u32(value: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, value);
    this.length += 4;
  }

  /** Appends bytes, then zero padding up to a multiple of 4. */
  padded(data: Uint8Array): void {
    const total = align4(data.length);
    this.reserve(total);
    this.bytes.set(data, this.length);
    this.bytes.fill(0, this.length + data.length, this.length + total);
    this.length += total;
  }

  result(): Uint8Array {
    return this.bytes.slice(0, this.length);
  }
}

class StringTable {
  private readonly offsets = new Map<string, number>();
  private readonly parts: string[] = [];
  private size = 0;

  offsetOf(name: string): number {
    let offset = this.offsets.get(name);
    if (offset === undefined) {
      offset = this.size;
      this.offsets.set(name, offset);
      this.parts.push(`${name}\0`);
      this.size += utf8.encode(name).length + 1;
    }
    return offset;
  }

  bytes(): Uint8Array {
    return utf8.encode(this.parts.join(''));
  }
}

function writeNode(node: FdtNode, sink: ByteSink, strings: StringTable): void {
  sink.u32(FDT_BEGIN_NODE);
  sink.padded(utf8.encode(`${node.name}\0`));
  for (const [name, value] of node.props) {
    sink.u32(FDT_PROP);
    sink.u32(value.length);
    sink.u32(strings.offsetOf(name));
    sink.padded(value);
  }
  for (const child of node.children) writeNode(child, sink, strings);
  sink.u32(FDT_END_NODE);
}

export function serializeFdt(tree: FdtTree): Uint8Array {
  const structure = new ByteSink();
  const strings = new StringTable();
  writeNode(tree.root, structure, strings);
  structure.u32(FDT_END);
  const structBytes = structure.result();
  const stringBytes = strings.bytes();

  const rsvOffset = FDT_HEADER_SIZE; // already 8-byte aligned
  const rsvSize = (tree.reservations.length + 1) * 16;
  const structOffset = rsvOffset + rsvSize;
  const stringsOffset = structOffset + structBytes.length;
  const total = stringsOffset + stringBytes.length;

  const blob = new Uint8Array(total);
  const view = new DataView(blob.buffer);
  view.setUint32(FDT_HEADER.MAGIC, FDT_MAGIC);
  view.setUint32(FDT_HEADER.TOTALSIZE, total);
  view.setUint32(FDT_HEADER.OFF_DT_STRUCT, structOffset);
  view.setUint32(FDT_HEADER.OFF_DT_STRINGS, stringsOffset);
  view.setUint32(FDT_HEADER.OFF_MEM_RSVMAP, rsvOffset);
  view.setUint32(FDT_HEADER.VERSION, FDT_VERSION);
  view.setUint32(FDT_HEADER.LAST_COMP_VERSION, FDT_LAST_COMP_VERSION);
  view.setUint32(FDT_HEADER.BOOT_CPUID_PHYS, tree.bootCpuId);
  view.setUint32(FDT_HEADER.SIZE_DT_STRINGS, stringBytes.length);
  view.setUint32(FDT_HEADER.SIZE_DT_STRUCT, structBytes.length);
  tree.reservations.forEach((r, i) => {
    const at = rsvOffset + i * 16;
    const [addrHi, addrLo] = u64Cells(r.address);
    const [sizeHi, sizeLo] = u64Cells(r.size);
    view.setUint32(at, addrHi);
    view.setUint32(at + 4, addrLo);
    view.setUint32(at + 8, sizeHi);
    view.setUint32(at + 12, sizeLo);
  });
  blob.set(structBytes, structOffset);
  blob.set(stringBytes, stringsOffset);
  return blob;
}
