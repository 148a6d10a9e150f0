/**
 * The qcow2 snapshot table: the on-disk directory of internal snapshots
 * (docs/interop/qcow2.txt, "Snapshots"). The header's nb_snapshots and
 * snapshots_offset locate one contiguous run of variable-length entries:
 *
 *   0..7   L1 table offset        8..11  L1 entry count
 *   12..13 ID length              14..15 name length
 *   16..19 date (s)               20..23 date (ns)
 *   24..31 VM clock (ns)          32..35 VM state size (32-bit, legacy)
 *   36..39 extra data size
 *   40..   extra data: 64-bit VM state size, virtual disk size, icount
 *          (each present only if the extra data is long enough; unknown
 *          trailing extra data is kept byte for byte)
 *   then the ID, the name (neither NUL-terminated), padding to 8 bytes.
 *
 * This module only converts between bytes and SnapshotEntry records and checks
 * them against QEMU's limits; it neither allocates clusters nor touches
 * refcounts (snapshots.ts does). Numbers that can exceed 2^53 (VM clock,
 * icount) are bigints; icount -1 means "not recorded".
 */
import { ImageFormatError } from '../../node.js';
import type { SnapshotInfo } from '../format.js';
import { MAX_SNAPSHOTS } from './header.js';

/** QEMU's limits (block/qcow2.h): more is refused as a hostile or broken image. */
export const MAX_SNAPSHOT_TABLE_BYTES = 64 * 1024 * 1024;
export const MAX_SNAPSHOT_EXTRA_DATA = 1024;

const FIXED_BYTES = 40;
/** Extra data this implementation writes: VM state size, disk size, icount. */
const KNOWN_EXTRA_BYTES = 24;
/** Version 3 images must carry extra data at least through the disk size. */
const V3_MIN_EXTRA_BYTES = 16;
export const ICOUNT_NONE = -1n;

export interface SnapshotEntry {
  l1Offset: number;
  l1Size: number;
  id: string;
  name: string;
  dateSec: number;
  dateNsec: number;
  vmClockNsec: bigint;
  vmStateSize: number;
  /** Virtual disk size when the snapshot was taken. */
  diskSize: number;
  /** Guest instruction count, or ICOUNT_NONE. */
  icount: bigint;
  /** Extra data bytes beyond the fields above, preserved on rewrite. */
  unknownExtra: Uint8Array;
}

/** What reading a table found that is wrong but survivable (check reports these). */
export interface SnapshotTableWarning {
  index: number;
  message: string;
}

export interface ParsedSnapshotTable {
  entries: SnapshotEntry[];
  /** Bytes the table occupies on disk. */
  byteLength: number;
  warnings: SnapshotTableWarning[];
}

export interface SnapshotTableContext {
  /** qcow2 version (2 or 3). */
  version: number;
  /** Current virtual size: the disk size of entries that do not record one. */
  virtualSize: number;
}

/** Reads `length` bytes at `offset` of the image file. */
export type ByteSource = (offset: number, length: number) => Promise<Uint8Array>;

function u64(view: DataView, at: number, what: string): number {
  const v = view.getBigUint64(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ImageFormatError(`${what} is too large (${v})`);
  return Number(v);
}

/**
 * Reads `count` entries starting at `offset`. Structural problems QEMU refuses
 * to open (too many entries, a table too large, oversized extra data) throw an
 * ImageFormatError naming the entry; incomplete extra data in a version 3 image
 * becomes a warning, as QEMU's check reports it.
 */
export async function readSnapshotTable(
  source: ByteSource,
  offset: number,
  count: number,
  ctx: SnapshotTableContext,
): Promise<ParsedSnapshotTable> {
  if (count > MAX_SNAPSHOTS) throw new ImageFormatError(`Snapshot table too large (${count} snapshots)`);
  const entries: SnapshotEntry[] = [];
  const warnings: SnapshotTableWarning[] = [];
  let pos = offset;
  for (let i = 0; i < count; i++) {
    const fixed = await source(pos, FIXED_BYTES);
    const view = new DataView(fixed.buffer, fixed.byteOffset, fixed.byteLength);
    const idLen = view.getUint16(12);
    const nameLen = view.getUint16(14);
    const extraLen = view.getUint32(36);
    if (extraLen > MAX_SNAPSHOT_EXTRA_DATA) {
      throw new ImageFormatError(`Too much extra metadata in snapshot table entry ${i} (${extraLen} bytes)`);
    }
    const varLen = extraLen + idLen + nameLen;
    const entryLen = align8(FIXED_BYTES + varLen);
    if (pos + entryLen - offset > MAX_SNAPSHOT_TABLE_BYTES) {
      throw new ImageFormatError(`Snapshot table too large (more than ${MAX_SNAPSHOT_TABLE_BYTES} bytes)`);
    }
    const rest = await source(pos + FIXED_BYTES, varLen);
    const extra = new DataView(rest.buffer, rest.byteOffset, extraLen);
    const entry: SnapshotEntry = {
      l1Offset: u64(view, 0, `Snapshot table entry ${i}: L1 table offset`),
      l1Size: view.getUint32(8),
      id: Buffer.from(rest.subarray(extraLen, extraLen + idLen)).toString('utf8'),
      name: Buffer.from(rest.subarray(extraLen + idLen, varLen)).toString('utf8'),
      dateSec: view.getUint32(16),
      dateNsec: view.getUint32(20),
      vmClockNsec: view.getBigUint64(24),
      vmStateSize: extraLen >= 8 ? u64(extra, 0, `Snapshot table entry ${i}: VM state size`) : view.getUint32(32),
      diskSize: extraLen >= 16 ? u64(extra, 8, `Snapshot table entry ${i}: disk size`) : ctx.virtualSize,
      icount: extraLen >= 24 ? extra.getBigInt64(16) : ICOUNT_NONE,
      unknownExtra: rest.slice(Math.min(extraLen, KNOWN_EXTRA_BYTES), extraLen),
    };
    if (ctx.version >= 3 && extraLen < V3_MIN_EXTRA_BYTES) {
      warnings.push({ index: i, message: `snapshot table entry ${i} is incomplete` });
    }
    entries.push(entry);
    pos += entryLen;
  }
  return { entries, byteLength: pos - offset, warnings };
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

function entryByteLength(e: SnapshotEntry): number {
  const extraLen = KNOWN_EXTRA_BYTES + e.unknownExtra.length;
  return align8(FIXED_BYTES + extraLen + Buffer.byteLength(e.id) + Buffer.byteLength(e.name));
}

/** Bytes serializeSnapshotTable() will produce for these entries. */
export function snapshotTableByteLength(entries: readonly SnapshotEntry[]): number {
  return entries.reduce((sum, e) => sum + entryByteLength(e), 0);
}

/**
 * Encodes the table. Every entry gets the full known extra data (VM state size,
 * disk size, icount) plus whatever unknown extra data it was read with.
 */
export function serializeSnapshotTable(entries: readonly SnapshotEntry[]): Uint8Array {
  if (entries.length > MAX_SNAPSHOTS) throw new ImageFormatError(`Too many snapshots (at most ${MAX_SNAPSHOTS})`);
  const out = new Uint8Array(snapshotTableByteLength(entries));
  const view = new DataView(out.buffer);
  let pos = 0;
  for (const e of entries) {
    const id = Buffer.from(e.id, 'utf8');
    const name = Buffer.from(e.name, 'utf8');
    if (id.length > 0xffff || name.length > 0xffff) {
      throw new ImageFormatError(`Snapshot ID or name is too long: '${e.name}'`);
    }
    const extraLen = KNOWN_EXTRA_BYTES + e.unknownExtra.length;
    if (extraLen > MAX_SNAPSHOT_EXTRA_DATA) {
      throw new ImageFormatError(`Too much extra metadata in snapshot '${e.name}'`);
    }
    view.setBigUint64(pos, BigInt(e.l1Offset));
    view.setUint32(pos + 8, e.l1Size);
    view.setUint16(pos + 12, id.length);
    view.setUint16(pos + 14, name.length);
    view.setUint32(pos + 16, e.dateSec);
    view.setUint32(pos + 20, e.dateNsec);
    view.setBigUint64(pos + 24, e.vmClockNsec);
    // The legacy 32-bit field holds the size when it fits, 0 otherwise (the 64-bit one wins).
    view.setUint32(pos + 32, e.vmStateSize <= 0xffffffff ? e.vmStateSize : 0);
    view.setUint32(pos + 36, extraLen);
    let at = pos + FIXED_BYTES;
    view.setBigUint64(at, BigInt(e.vmStateSize));
    view.setBigUint64(at + 8, BigInt(e.diskSize));
    view.setBigInt64(at + 16, e.icount);
    at += KNOWN_EXTRA_BYTES;
    out.set(e.unknownExtra, at);
    at += e.unknownExtra.length;
    out.set(id, at);
    out.set(name, at + id.length);
    pos += entryByteLength(e);
  }
  return out;
}

/** The entry as qemu-img's JSON and list output show it. */
export function snapshotInfo(e: SnapshotEntry): SnapshotInfo {
  const info: SnapshotInfo = {
    id: e.id,
    name: e.name,
    'vm-state-size': e.vmStateSize,
    'date-sec': e.dateSec,
    'date-nsec': e.dateNsec,
    'vm-clock-sec': Number(e.vmClockNsec / 1_000_000_000n),
    'vm-clock-nsec': Number(e.vmClockNsec % 1_000_000_000n),
  };
  if (e.icount !== ICOUNT_NONE) info.icount = Number(e.icount);
  return info;
}

/**
 * Finds a snapshot the way qemu-img's -a/-d do: an exact ID match first, then
 * the first entry with that name. Returns the index or -1.
 */
export function findSnapshot(entries: readonly SnapshotEntry[], idOrName: string): number {
  const byId = entries.findIndex((e) => e.id === idOrName);
  return byId >= 0 ? byId : entries.findIndex((e) => e.name === idOrName);
}

/** The next free numeric ID: one more than the largest numeric ID in use (QEMU's rule). */
export function nextSnapshotId(entries: readonly SnapshotEntry[]): string {
  let max = 0;
  for (const e of entries) {
    const n = /^[0-9]+$/.test(e.id) ? Number(e.id) : 0;
    if (n > max) max = n;
  }
  return String(max + 1);
}
