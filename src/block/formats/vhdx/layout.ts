/**
 * The fixed part of a VHDX file (Microsoft's VHDX Format Specification 1.0; all
 * integers little-endian): the file identifier, the two headers and the two
 * region tables, each a copy of the other, in the first megabyte.
 *
 *   0      file identifier: "vhdxfile", creator (UTF-16, 256 characters)
 *   64K    header 1, 128K header 2 (4 KiB each): "head", CRC-32C, sequence
 *          number (u64), FileWriteGuid, DataWriteGuid, LogGuid, log version (0),
 *          version (1), log length (u32), log offset (u64)
 *   192K   region table 1, 256K region table 2 (64 KiB each): "regi", CRC-32C,
 *          entry count, then 32-byte entries: GUID, file offset (u64), length
 *          (u32), flags (bit 0: required)
 *
 * The current header is the valid one (signature, CRC, version) with the higher
 * sequence number; a writer updates the other slot with sequence + 1. The
 * region table names the BAT and metadata regions (1 MiB aligned, multiples of
 * 1 MiB); unknown regions marked required make the file unreadable. Every parse
 * checks what it relies on and throws ImageFormatError naming the bad field.
 *
 * GUIDs are stored with their first three fields little-endian (disk-uuid.ts:
 * guidBytes); guidText() reads one at an offset as canonical text.
 */
import { ImageFormatError } from '../../node.js';
import { guidBytes, guidBytesText } from '../disk-uuid.js';
import { crc32c } from './crc32c.js';

export const MiB = 1 << 20;
export const HEADER_OFFSETS = [64 * 1024, 128 * 1024] as const;
export const HEADER_BYTES = 4096;
export const REGION_TABLE_OFFSETS = [192 * 1024, 256 * 1024] as const;
export const REGION_TABLE_BYTES = 64 * 1024;
/** The file identifier, headers and region tables take the first megabyte. */
export const HEADER_AREA_BYTES = MiB;
const MAX_REGION_ENTRIES = 2047;

export const BAT_REGION_GUID = '2dc27766-f623-4200-9d64-115e9bfd4a08';
export const METADATA_REGION_GUID = '8b7ca206-4790-4b9a-b8fe-575f050f886e';
export const ZERO_GUID = '00000000-0000-0000-0000-000000000000';

/** Canonical text of a GUID stored at `at` in `buf`. */
export function guidText(buf: Uint8Array, at: number): string {
  return guidBytesText(buf.subarray(at, at + 16));
}

export function ascii(buf: Uint8Array, at: number, n: number): string {
  return String.fromCharCode(...buf.subarray(at, at + n));
}

export function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** A u64 that must stay below 2^53 (file offsets and sizes). */
export function getU64(v: DataView, at: number, what: string): number {
  const hi = v.getUint32(at + 4, true);
  if (hi >= 0x200000) throw new ImageFormatError(`invalid VHDX: ${what} is out of range`);
  return hi * 2 ** 32 + v.getUint32(at, true);
}

export function setU64(v: DataView, at: number, value: number): void {
  v.setUint32(at, value % 2 ** 32, true);
  v.setUint32(at + 4, Math.floor(value / 2 ** 32), true);
}

export function isVhdx(head: Uint8Array): boolean {
  return head.length >= 8 && ascii(head, 0, 8) === 'vhdxfile';
}

export function serializeFileIdentifier(creator: string): Uint8Array {
  const buf = new Uint8Array(64 * 1024);
  buf.set(new TextEncoder().encode('vhdxfile'), 0);
  const v = view(buf);
  for (let i = 0; i < Math.min(creator.length, 256); i++) v.setUint16(8 + i * 2, creator.charCodeAt(i), true);
  return buf;
}

export interface VhdxHeader {
  /** All 64 bits (writers may start anywhere). */
  sequence: bigint;
  fileWriteGuid: string;
  dataWriteGuid: string;
  logGuid: string;
  logLength: number;
  logOffset: number;
}

/** The header in `buf` (4 KiB), or the reason it is not a valid one. */
export function parseHeader(buf: Uint8Array): VhdxHeader | string {
  const v = view(buf);
  if (ascii(buf, 0, 4) !== 'head') return 'no "head" signature';
  if (v.getUint32(4, true) !== crc32c(buf.subarray(0, HEADER_BYTES), 4)) return 'checksum mismatch';
  const version = v.getUint16(66, true);
  if (version !== 1) return `version ${version}`;
  const logVersion = v.getUint16(64, true);
  if (logVersion !== 0) return `log version ${logVersion}`;
  return {
    sequence: v.getBigUint64(8, true),
    fileWriteGuid: guidText(buf, 16),
    dataWriteGuid: guidText(buf, 32),
    logGuid: guidText(buf, 48),
    logLength: v.getUint32(68, true),
    logOffset: getU64(v, 72, 'log offset'),
  };
}

export function serializeHeader(h: VhdxHeader): Uint8Array {
  const buf = new Uint8Array(HEADER_BYTES);
  const v = view(buf);
  buf.set(new TextEncoder().encode('head'), 0);
  v.setBigUint64(8, h.sequence, true);
  buf.set(guidBytes(h.fileWriteGuid), 16);
  buf.set(guidBytes(h.dataWriteGuid), 32);
  buf.set(guidBytes(h.logGuid), 48);
  v.setUint16(64, 0, true);
  v.setUint16(66, 1, true);
  v.setUint32(68, h.logLength, true);
  setU64(v, 72, h.logOffset);
  v.setUint32(4, crc32c(buf, 4), true);
  return buf;
}

/** Of the two header slots' contents, the current one and its slot (0 or 1). */
export function currentHeader(slots: readonly Uint8Array[]): { header: VhdxHeader; slot: number } {
  const parsed = slots.map(parseHeader);
  const valid = parsed.map((p, slot) => ({ p, slot })).filter((x): x is { p: VhdxHeader; slot: number } => typeof x.p !== 'string');
  if (valid.length === 0) {
    throw new ImageFormatError(`invalid VHDX: no valid header (header 1: ${parsed[0] as string}; header 2: ${parsed[1] as string})`);
  }
  const best = valid.reduce((a, b) => (b.p.sequence > a.p.sequence ? b : a));
  return { header: best.p, slot: best.slot };
}

export interface Region {
  guid: string;
  offset: number;
  length: number;
  required: boolean;
}

/** The region table in `buf` (64 KiB), or the reason it is not a valid one. */
export function parseRegionTable(buf: Uint8Array): Region[] | string {
  const v = view(buf);
  if (ascii(buf, 0, 4) !== 'regi') return 'no "regi" signature';
  if (v.getUint32(4, true) !== crc32c(buf.subarray(0, REGION_TABLE_BYTES), 4)) return 'checksum mismatch';
  const count = v.getUint32(8, true);
  if (count > MAX_REGION_ENTRIES) return `${count} entries`;
  const regions: Region[] = [];
  for (let i = 0; i < count; i++) {
    const at = 16 + i * 32;
    regions.push({
      guid: guidText(buf, at),
      offset: getU64(v, at + 16, `region ${i} offset`),
      length: v.getUint32(at + 24, true),
      required: (v.getUint32(at + 28, true) & 1) !== 0,
    });
  }
  return regions;
}

export function serializeRegionTable(regions: readonly Region[]): Uint8Array {
  const buf = new Uint8Array(REGION_TABLE_BYTES);
  const v = view(buf);
  buf.set(new TextEncoder().encode('regi'), 0);
  v.setUint32(8, regions.length, true);
  regions.forEach((r, i) => {
    const at = 16 + i * 32;
    buf.set(guidBytes(r.guid), at);
    setU64(v, at + 16, r.offset);
    v.setUint32(at + 24, r.length, true);
    v.setUint32(at + 28, r.required ? 1 : 0, true);
  });
  v.setUint32(4, crc32c(buf, 4), true);
  return buf;
}

/** The BAT and metadata regions, checked: aligned, inside the file, apart from each other, the header area and the log. */
export function checkRegions(
  regions: readonly Region[],
  log: { offset: number; length: number },
  fileSize: number,
): { bat: Region; metadata: Region } {
  const spans: { name: string; offset: number; length: number }[] = [
    { name: 'the header area', offset: 0, length: HEADER_AREA_BYTES },
  ];
  if (log.length > 0) spans.push({ name: 'the log', offset: log.offset, length: log.length });
  let bat: Region | undefined;
  let metadata: Region | undefined;
  for (const r of regions) {
    const name = r.guid === BAT_REGION_GUID ? 'BAT region' : r.guid === METADATA_REGION_GUID ? 'metadata region' : `region ${r.guid}`;
    if (r.guid === BAT_REGION_GUID) bat = r;
    else if (r.guid === METADATA_REGION_GUID) metadata = r;
    else if (r.required) throw new ImageFormatError(`unsupported VHDX: unknown required ${name}`);
    else continue;
    if (r.offset % MiB !== 0 || r.length % MiB !== 0 || r.length === 0) {
      throw new ImageFormatError(`invalid VHDX: ${name} at ${r.offset} of ${r.length} bytes is not aligned to 1 MiB`);
    }
    if (r.offset + r.length > fileSize) throw new ImageFormatError(`invalid VHDX: ${name} is past the end of the file`);
    for (const s of spans) {
      if (r.offset < s.offset + s.length && s.offset < r.offset + r.length) {
        throw new ImageFormatError(`invalid VHDX: ${name} overlaps ${s.name}`);
      }
    }
    spans.push({ name: `the ${name}`, offset: r.offset, length: r.length });
  }
  if (!bat) throw new ImageFormatError('invalid VHDX: the region table has no BAT region');
  if (!metadata) throw new ImageFormatError('invalid VHDX: the region table has no metadata region');
  return { bat, metadata };
}
