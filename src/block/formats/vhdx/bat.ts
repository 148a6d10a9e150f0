/**
 * The VHDX block allocation table: one 64-bit entry per payload block, with a
 * sector bitmap entry after every `chunkRatio` payload entries (chunk ratio =
 * 2^23 × logical sector size / block size: the payload blocks one sector bitmap
 * block describes). An entry holds a state (bits 0-2) and the file offset in
 * MiB (bits 20-63).
 *
 * Payload states: NOT_PRESENT, UNDEFINED, ZERO, UNMAPPED (and 0.95's UNMAPPED,
 * 5) read as zeroes in a disk without a parent; FULLY_PRESENT blocks are stored
 * at their offset; PARTIALLY_PRESENT (differencing disks only) is stored where
 * its sector bitmap says, the rest comes from the parent. Sector bitmap entries
 * are NOT_PRESENT or PRESENT.
 *
 * Bat keeps the table's bytes as read; set() edits them and records which 4 KiB
 * sectors changed, for the log to carry (takeDirtySectors()).
 */
import { ImageFormatError } from '../../node.js';
import { MiB } from './layout.js';

export const BLOCK_NOT_PRESENT = 0;
export const BLOCK_UNDEFINED = 1;
export const BLOCK_ZERO = 2;
export const BLOCK_UNMAPPED = 3;
export const BLOCK_UNMAPPED_V095 = 5;
export const BLOCK_FULLY_PRESENT = 6;
export const BLOCK_PARTIALLY_PRESENT = 7;
export const BAT_SECTOR = 4096;

/** Whether a payload state means "not stored, reads as zeroes" in a disk without a parent. */
export function readsAsZero(state: number): boolean {
  return state === BLOCK_NOT_PRESENT || state === BLOCK_UNDEFINED || state === BLOCK_ZERO || state === BLOCK_UNMAPPED || state === BLOCK_UNMAPPED_V095;
}
const TWO32 = 2 ** 32;

export interface BatGeometry {
  chunkRatio: number;
  payloadBlocks: number;
  sectorBitmapBlocks: number;
  /** Entries the table must hold. */
  entries: number;
}

export function batGeometry(diskSize: number, blockSize: number, logicalSectorSize: number, hasParent: boolean): BatGeometry {
  const chunkRatio = (2 ** 23 * logicalSectorSize) / blockSize;
  const payloadBlocks = Math.ceil(diskSize / blockSize);
  const sectorBitmapBlocks = Math.ceil(payloadBlocks / chunkRatio);
  const entries = hasParent
    ? sectorBitmapBlocks * (chunkRatio + 1)
    : payloadBlocks + Math.floor(Math.max(0, payloadBlocks - 1) / chunkRatio);
  return { chunkRatio, payloadBlocks, sectorBitmapBlocks, entries };
}

/** The table index of payload block `block`. */
export function payloadIndex(g: BatGeometry, block: number): number {
  return block + Math.floor(block / g.chunkRatio);
}

/** The table index of the sector bitmap entry of the chunk holding payload block `block`. */
export function sectorBitmapIndex(g: BatGeometry, block: number): number {
  return Math.floor(block / g.chunkRatio) * (g.chunkRatio + 1) + g.chunkRatio;
}

export class Bat {
  private readonly v: DataView;
  private readonly dirty = new Set<number>();

  constructor(readonly bytes: Uint8Array) {
    this.v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  state(index: number): number {
    return this.v.getUint32(index * 8, true) & 7;
  }

  /** The entry's file offset in bytes (0 when none). */
  offset(index: number): number {
    const hi = this.v.getUint32(index * 8 + 4, true);
    if (hi >= 0x200000) throw new ImageFormatError(`invalid VHDX: BAT entry ${index} points past any file`);
    return hi * TWO32 + ((this.v.getUint32(index * 8, true) & 0xfff00000) >>> 0);
  }

  set(index: number, state: number, offset: number): void {
    if (offset % MiB !== 0) throw new Error(`VHDX block offset ${offset} is not aligned to 1 MiB`);
    this.v.setUint32(index * 8, ((offset % TWO32) | state) >>> 0, true);
    this.v.setUint32(index * 8 + 4, Math.floor(offset / TWO32), true);
    this.dirty.add(Math.floor((index * 8) / BAT_SECTOR));
  }

  hasDirty(): boolean {
    return this.dirty.size > 0;
  }

  dirtyCount(): number {
    return this.dirty.size;
  }

  /** The changed 4 KiB sectors (index within the table, a copy of their bytes), oldest change first; clears the record. */
  takeDirtySectors(): { sector: number; data: Uint8Array }[] {
    const out = [...this.dirty].map((sector) => ({ sector, data: this.bytes.slice(sector * BAT_SECTOR, (sector + 1) * BAT_SECTOR) }));
    this.dirty.clear();
    return out;
  }
}
