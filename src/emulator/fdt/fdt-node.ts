/**
 * The in-memory device tree: nodes holding named properties (raw big-endian
 * bytes) and ordered children. The writer serialises it, the reader builds it
 * from a blob, so a parsed tree can be edited and written again (--dtb with
 * /chosen patched).
 *
 * Property helpers encode and decode the value shapes the Devicetree
 * Specification uses: u32 cells and cell arrays, u64 values as two cells
 * (high cell first), strings, string lists (NUL-separated), raw bytes, empty
 * (boolean) properties and phandles. 64-bit values are plain numbers and must
 * stay below 2^53; larger ones are refused rather than rounded.
 *
 * FdtTree adds what belongs to the whole blob: the memory reservations, the
 * boot CPU id and phandle allocation (1, 2, … above any phandle already in
 * the tree).
 */
import type { FdtReservation } from './fdt-format.js';

const TWO_32 = 0x1_0000_0000;
const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: false });

function checkU32(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value >= TWO_32) {
    throw new RangeError(`${what}: ${value} is not an unsigned 32-bit value`);
  }
  return value;
}

function checkU64(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${what}: ${value} is not an unsigned integer below 2^53`);
  }
  return value;
}

/** A 64-bit number as two cells, high first. */
export function u64Cells(value: number): [number, number] {
  checkU64(value, 'u64 cell pair');
  return [Math.floor(value / TWO_32), value >>> 0];
}

/** Joins `cells.length` big-endian cells into one number; throws when it would exceed 2^53. */
export function cellsToNumber(cells: readonly number[]): number {
  let value = 0;
  for (const cell of cells) {
    value = value * TWO_32 + cell;
  }
  if (!Number.isSafeInteger(value)) throw new RangeError(`cell value ${cells.join(',')} exceeds 2^53`);
  return value;
}

export class FdtNode {
  readonly props = new Map<string, Uint8Array>();
  readonly children: FdtNode[] = [];

  /** `name` is the node name with its unit address ("serial@10000000"); the root's is "". */
  constructor(readonly name: string) {
    if (name.includes('/') || name.includes('\0')) throw new RangeError(`bad device tree node name '${name}'`);
  }

  /** Adds a child node; a child of that name must not exist yet. */
  addNode(name: string): FdtNode {
    if (this.child(name)) throw new RangeError(`node '${name}' already exists under '${this.name || '/'}'`);
    const node = new FdtNode(name);
    this.children.push(node);
    return node;
  }

  /** The child called exactly `name`, or else the one whose name before '@' is `name` (first match). */
  child(name: string): FdtNode | undefined {
    return this.children.find((c) => c.name === name) ?? this.children.find((c) => c.name.split('@')[0] === name);
  }

  /** The node's name without its unit address. */
  get baseName(): string {
    return this.name.split('@')[0];
  }

  has(prop: string): boolean {
    return this.props.has(prop);
  }

  setBytes(prop: string, value: Uint8Array): this {
    this.props.set(prop, Uint8Array.from(value));
    return this;
  }

  /** An empty property (a flag such as interrupt-controller). */
  setEmpty(prop: string): this {
    return this.setBytes(prop, new Uint8Array(0));
  }

  setCells(prop: string, cells: readonly number[]): this {
    const bytes = new Uint8Array(cells.length * 4);
    const view = new DataView(bytes.buffer);
    cells.forEach((c, i) => view.setUint32(i * 4, checkU32(c, prop)));
    this.props.set(prop, bytes);
    return this;
  }

  setU32(prop: string, value: number): this {
    return this.setCells(prop, [value]);
  }

  /** 64-bit values, two cells each (high first). */
  setU64s(prop: string, values: readonly number[]): this {
    return this.setCells(prop, values.flatMap((v) => u64Cells(v)));
  }

  setU64(prop: string, value: number): this {
    return this.setU64s(prop, [value]);
  }

  setString(prop: string, value: string): this {
    return this.setStrings(prop, [value]);
  }

  /** A string list: each string NUL-terminated. */
  setStrings(prop: string, values: readonly string[]): this {
    for (const v of values) {
      if (v.includes('\0')) throw new RangeError(`${prop}: a string may not contain NUL`);
    }
    return this.setBytes(prop, utf8.encode(values.map((v) => `${v}\0`).join('')));
  }

  getBytes(prop: string): Uint8Array | undefined {
    return this.props.get(prop);
  }

  /** The value as u32 cells; undefined when absent or not a multiple of 4 bytes long. */
  getCells(prop: string): number[] | undefined {
    const bytes = this.props.get(prop);
    if (!bytes || bytes.length % 4 !== 0) return undefined;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return Array.from({ length: bytes.length / 4 }, (_, i) => view.getUint32(i * 4));
  }

  getU32(prop: string): number | undefined {
    const cells = this.getCells(prop);
    return cells?.length === 1 ? cells[0] : undefined;
  }

  /** The strings of a string list; undefined when absent or not NUL-terminated. */
  getStrings(prop: string): string[] | undefined {
    const bytes = this.props.get(prop);
    if (!bytes || bytes.length === 0 || bytes[bytes.length - 1] !== 0) return undefined;
    return utf8Decoder.decode(bytes.subarray(0, bytes.length - 1)).split('\0');
  }

  getString(prop: string): string | undefined {
    return this.getStrings(prop)?.[0];
  }
}

export class FdtTree {
  readonly reservations: FdtReservation[] = [];
  bootCpuId = 0;
  private nextPhandle: number;

  constructor(readonly root: FdtNode = new FdtNode('')) {
    this.nextPhandle = maxPhandle(root) + 1;
  }

  /** The node's phandle, assigning the next free one (and its phandle property) when it has none. */
  phandle(node: FdtNode): number {
    const existing = node.getU32('phandle');
    if (existing !== undefined) return existing;
    const value = this.nextPhandle++;
    node.setU32('phandle', value);
    return value;
  }

  /**
   * The node at an absolute path such as "/soc/serial@10000000"; a component
   * without a unit address also matches a name that has one ("/memory").
   */
  find(path: string): FdtNode | undefined {
    if (!path.startsWith('/')) return undefined;
    let node: FdtNode | undefined = this.root;
    for (const part of path.split('/').filter((p) => p !== '')) {
      node = node.child(part);
      if (!node) return undefined;
    }
    return node;
  }
}

function maxPhandle(node: FdtNode): number {
  let max = node.getU32('phandle') ?? 0;
  for (const child of node.children) max = Math.max(max, maxPhandle(child));
  return max;
}
