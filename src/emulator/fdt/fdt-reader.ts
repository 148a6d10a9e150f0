/**
 * Parses a device tree blob (a --dtb file) into an FdtTree, validating it on
 * the way: a hostile or truncated blob gives an FdtError, never an exception
 * of another kind and never an out-of-bounds read.
 *
 * Accepted: versions 16 and 17 (a version 16 header has no size_dt_struct;
 * the structure block then runs to totalsize), blocks inside totalsize,
 * balanced BEGIN_NODE/END_NODE tokens with one root, NOP tokens anywhere,
 * property names inside the strings block, nesting up to MAX_DEPTH levels.
 * Memory reservations and 64-bit numbers must stay below 2^53.
 */
import {
  FDT_BEGIN_NODE,
  FDT_END,
  FDT_END_NODE,
  FDT_HEADER,
  FDT_HEADER_SIZE,
  FDT_MAGIC,
  FDT_NOP,
  FDT_PROP,
  FdtError,
  align4,
} from './fdt-format.js';
import { FdtNode, FdtTree, cellsToNumber } from './fdt-node.js';

const MAX_DEPTH = 64;
const utf8 = new TextDecoder('utf-8', { fatal: false });

/** A bounds-checked cursor over one block of the blob. */
class Block {
  pos: number;
  constructor(
    private readonly view: DataView,
    start: number,
    readonly end: number,
    private readonly what: string,
  ) {
    this.pos = start;
  }

  u32(): number {
    if (this.pos + 4 > this.end) throw new FdtError(`${this.what} block ends inside a value at offset ${this.pos}`);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  bytes(length: number): Uint8Array {
    if (length > this.end - this.pos) throw new FdtError(`${this.what} block ends inside a ${length}-byte value`);
    const out = new Uint8Array(this.view.buffer, this.view.byteOffset + this.pos, length).slice();
    this.pos = align4(this.pos + length);
    return out;
  }

  /** A NUL-terminated string, then padding to 4 bytes. */
  cstring(): string {
    const bytes = new Uint8Array(this.view.buffer, this.view.byteOffset, this.end);
    const nul = bytes.indexOf(0, this.pos);
    if (nul < 0) throw new FdtError(`unterminated name in the ${this.what} block`);
    const text = utf8.decode(bytes.subarray(this.pos, nul));
    this.pos = align4(nul + 1);
    return text;
  }
}

function readHeader(view: DataView, length: number) {
  if (length < FDT_HEADER_SIZE) throw new FdtError(`${length} bytes is shorter than the header`);
  const field = (offset: number) => view.getUint32(offset);
  if (field(FDT_HEADER.MAGIC) !== FDT_MAGIC) throw new FdtError('bad magic');
  const version = field(FDT_HEADER.VERSION);
  const lastComp = field(FDT_HEADER.LAST_COMP_VERSION);
  if (version < 16 || lastComp > 17) throw new FdtError(`unsupported version ${version} (last compatible ${lastComp})`);
  const total = field(FDT_HEADER.TOTALSIZE);
  if (total < FDT_HEADER_SIZE || total > length) throw new FdtError(`totalsize ${total} does not fit the ${length}-byte file`);
  const inside = (name: string, offset: number, size: number) => {
    if (offset < FDT_HEADER_SIZE || offset > total || size > total - offset) {
      throw new FdtError(`${name} block (offset ${offset}, size ${size}) lies outside the blob`);
    }
  };
  const structOffset = field(FDT_HEADER.OFF_DT_STRUCT);
  const structSize = version >= 17 ? field(FDT_HEADER.SIZE_DT_STRUCT) : total - structOffset;
  const stringsOffset = field(FDT_HEADER.OFF_DT_STRINGS);
  const stringsSize = field(FDT_HEADER.SIZE_DT_STRINGS);
  const rsvOffset = field(FDT_HEADER.OFF_MEM_RSVMAP);
  inside('structure', structOffset, structSize);
  inside('strings', stringsOffset, stringsSize);
  inside('memory reservation', rsvOffset, 0);
  if (structOffset % 4 !== 0) throw new FdtError('structure block is not 4-byte aligned');
  return { total, structOffset, structSize, stringsOffset, stringsSize, rsvOffset, bootCpuId: field(FDT_HEADER.BOOT_CPUID_PHYS) };
}

function readReservations(tree: FdtTree, rsv: Block): void {
  for (;;) {
    const cells = [rsv.u32(), rsv.u32(), rsv.u32(), rsv.u32()];
    if (cells.every((c) => c === 0)) return;
    try {
      tree.reservations.push({ address: cellsToNumber(cells.slice(0, 2)), size: cellsToNumber(cells.slice(2)) });
    } catch {
      throw new FdtError('a memory reservation lies above 2^53');
    }
  }
}

function propertyName(strings: Uint8Array, offset: number): string {
  const nul = offset < strings.length ? strings.indexOf(0, offset) : -1;
  if (nul < 0) throw new FdtError(`property name offset ${offset} is outside the strings block`);
  return utf8.decode(strings.subarray(offset, nul));
}

/** Reads the structure block: one root node, then FDT_END. */
function readStructure(block: Block, strings: Uint8Array): FdtNode {
  const stack: FdtNode[] = [];
  let root: FdtNode | undefined;
  for (;;) {
    const token = block.u32();
    if (token === FDT_NOP) continue;
    if (token === FDT_BEGIN_NODE) {
      const name = block.cstring();
      const parent = stack[stack.length - 1];
      if (!parent && root) throw new FdtError('a second root node');
      if (stack.length >= MAX_DEPTH) throw new FdtError(`nodes nested deeper than ${MAX_DEPTH} levels`);
      let node: FdtNode;
      try {
        node = parent ? parent.addNode(name) : new FdtNode(name);
      } catch (e) {
        throw new FdtError((e as Error).message);
      }
      root ??= node;
      stack.push(node);
    } else if (token === FDT_END_NODE) {
      if (!stack.pop()) throw new FdtError('END_NODE without a node');
    } else if (token === FDT_PROP) {
      const node = stack[stack.length - 1];
      if (!node) throw new FdtError('a property outside any node');
      const length = block.u32();
      const name = propertyName(strings, block.u32());
      if (node.has(name)) throw new FdtError(`property '${name}' appears twice in node '${node.name}'`);
      node.setBytes(name, block.bytes(length));
    } else if (token === FDT_END) {
      if (!root || stack.length !== 0) throw new FdtError('END token before the root node is closed');
      return root;
    } else {
      throw new FdtError(`unknown token 0x${token.toString(16)} at structure offset ${block.pos - 4}`);
    }
  }
}

export function parseFdt(blob: Uint8Array): FdtTree {
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const h = readHeader(view, blob.byteLength);
  const strings = blob.subarray(h.stringsOffset, h.stringsOffset + h.stringsSize);
  const root = readStructure(new Block(view, h.structOffset, h.structOffset + h.structSize, 'structure'), strings);
  const tree = new FdtTree(root);
  tree.bootCpuId = h.bootCpuId;
  readReservations(tree, new Block(view, h.rsvOffset, h.total, 'memory reservation'));
  return tree;
}
