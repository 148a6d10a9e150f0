/**
 * The VHD footer and dynamic-disk header (Microsoft's Virtual Hard Disk Image
 * Format Specification; all integers big-endian).
 *
 * Footer (512 bytes; at the end of every image, and copied at offset 0 of dynamic
 * ones): cookie "conectix", features, version 1.0, data offset (the dynamic header,
 * or all ones for fixed disks), timestamp (seconds since 2000-01-01 UTC), creator
 * application/version/host, original and current size, CHS geometry, disk type
 * (2 fixed, 3 dynamic, 4 differencing), checksum (one's complement of the byte
 * sum with the checksum field zero), unique id, saved-state byte.
 *
 * Dynamic header (1024 bytes): cookie "cxsparse", data offset (all ones), block
 * allocation table (BAT) offset, version, BAT entries, block size, checksum, and
 * for differencing disks the parent's unique id (40), its modification time
 * stamp (56), its file name in UTF-16 big-endian (64, 512 bytes) and eight
 * parent locator entries (576, 24 bytes each: platform code such as "W2ru" or
 * "W2ku", data space, data length, data offset); parent.ts reads and writes
 * the locators' data.
 *
 * Which size a reader believes follows QEMU's table by creator application: the
 * CHS geometry's size for Virtual PC and older QEMU images ("vpc ", "qemu", …),
 * the footer's current size for Hyper-V, disk2vhd, XenServer and QEMU's
 * force_size images ("win ", "d2v ", "tap\0", "CTXS", "qem2"), and always the
 * current size when the geometry is the largest one (65535/16/255).
 */
import { ImageFormatError } from '../../node.js';

export const FOOTER_BYTES = 512;
export const DYN_HEADER_BYTES = 1024;
export const DISK_FIXED = 2;
export const DISK_DYNAMIC = 3;
export const DISK_DIFFERENCING = 4;
export const BAT_UNALLOCATED = 0xffffffff;
/** Where the footer holds the disk's unique id (a UUID in RFC 4122 byte order). */
export const UNIQUE_ID_AT = 68;
export const DEFAULT_BLOCK_SIZE = 2 << 20;
export const MAX_GEOMETRY = { cylinders: 65535, heads: 16, sectors: 255 };
const VHD_EPOCH_MS = Date.UTC(2000, 0, 1);
const PARENT_NAME_AT = 64;
const PARENT_NAME_BYTES = 512;
const LOCATORS_AT = 576;
const LOCATOR_ENTRIES = 8;
/** Parent paths longer than this are not paths. */
export const MAX_LOCATOR_BYTES = 64 * 1024;
const CURRENT_SIZE_CREATORS = ['win ', 'd2v ', 'tap\0', 'CTXS', 'qem2'];

export interface Geometry {
  cylinders: number;
  heads: number;
  sectors: number;
}

export interface VhdFooter {
  dataOffset: number;
  creatorApp: string;
  currentSize: number;
  geometry: Geometry;
  diskType: number;
}

/** One parent locator entry of a differencing disk's dynamic header. */
export interface ParentLocator {
  /** Platform code: "W2ru" (relative Windows path, UTF-16LE), "W2ku" (absolute), "MacX", … */
  code: string;
  /** Space reserved for the data (bytes, as Windows writes it; the specification says sectors). */
  dataSpace: number;
  dataLength: number;
  dataOffset: number;
}

/** What a differencing disk's dynamic header says about its parent. */
export interface ParentFields {
  uniqueId: Uint8Array;
  /** The parent's modification time, in seconds since 2000-01-01 UTC. */
  timestamp: number;
  /** The parent's file name as recorded (UTF-16 big-endian in the header). */
  name: string;
  locators: ParentLocator[];
}

export interface DynHeader {
  tableOffset: number;
  maxTableEntries: number;
  blockSize: number;
  /** Differencing disks only. */
  parent?: ParentFields;
}

const ascii = (buf: Uint8Array, at: number, n: number) => String.fromCharCode(...buf.subarray(at, at + n));

function u64(v: DataView, at: number): number {
  const hi = v.getUint32(at);
  const lo = v.getUint32(at + 4);
  if (hi === 0xffffffff && lo === 0xffffffff) return -1;
  if (hi >= 0x200000) throw new ImageFormatError(`invalid VHD: 64-bit field at byte ${at} is out of range`);
  return hi * 2 ** 32 + lo;
}

function setU64(v: DataView, at: number, value: number): void {
  v.setUint32(at, value < 0 ? 0xffffffff : Math.floor(value / 2 ** 32));
  v.setUint32(at + 4, value < 0 ? 0xffffffff : value % 2 ** 32);
}

function checksum(buf: Uint8Array, skipAt: number): number {
  let sum = 0;
  for (let i = 0; i < buf.length; i++) if (i < skipAt || i >= skipAt + 4) sum += buf[i]!;
  return ~sum >>> 0;
}

export function isFooter(buf: Uint8Array): boolean {
  return buf.length >= 8 && ascii(buf, 0, 8) === 'conectix';
}

export function parseFooter(buf: Uint8Array): VhdFooter {
  if (!isFooter(buf)) throw new ImageFormatError('The image is not a VHD (no "conectix" footer)');
  const v = new DataView(buf.buffer, buf.byteOffset, FOOTER_BYTES);
  if (v.getUint32(64) !== checksum(buf.subarray(0, FOOTER_BYTES), 64)) throw new ImageFormatError('invalid VHD: footer checksum mismatch');
  const f: VhdFooter = {
    dataOffset: u64(v, 16),
    creatorApp: ascii(buf, 28, 4),
    currentSize: u64(v, 48),
    geometry: { cylinders: v.getUint16(56), heads: v.getUint8(58), sectors: v.getUint8(59) },
    diskType: v.getUint32(60),
  };
  if (![DISK_FIXED, DISK_DYNAMIC, DISK_DIFFERENCING].includes(f.diskType)) throw new ImageFormatError(`invalid VHD: disk type ${f.diskType}`);
  return f;
}

/** The virtual size a reader uses (QEMU's rule, see the header comment). */
export function virtualSize(f: VhdFooter): number {
  const g = f.geometry;
  const isMax = g.cylinders === MAX_GEOMETRY.cylinders && g.heads === MAX_GEOMETRY.heads && g.sectors === MAX_GEOMETRY.sectors;
  if (isMax || CURRENT_SIZE_CREATORS.includes(f.creatorApp)) return f.currentSize;
  return g.cylinders * g.heads * g.sectors * 512;
}

export function serializeFooter(f: VhdFooter, uniqueId: Uint8Array): Uint8Array {
  const buf = new Uint8Array(FOOTER_BYTES);
  const v = new DataView(buf.buffer);
  buf.set(new TextEncoder().encode('conectix'), 0);
  v.setUint32(8, 2);
  v.setUint32(12, 0x00010000);
  setU64(v, 16, f.dataOffset);
  v.setUint32(24, vhdSeconds(Date.now()));
  buf.set(new TextEncoder().encode(f.creatorApp.padEnd(4, '\0').slice(0, 4)), 28);
  v.setUint32(32, 0x00050003);
  buf.set(new TextEncoder().encode('Wi2k'), 36);
  setU64(v, 40, f.currentSize);
  setU64(v, 48, f.currentSize);
  v.setUint16(56, f.geometry.cylinders);
  v.setUint8(58, f.geometry.heads);
  v.setUint8(59, f.geometry.sectors);
  v.setUint32(60, f.diskType);
  buf.set(uniqueId, UNIQUE_ID_AT);
  v.setUint32(64, checksum(buf, 64));
  return buf;
}

/** A time (milliseconds since 1970) as VHD time stamps count it: seconds since 2000-01-01 UTC. */
export function vhdSeconds(ms: number): number {
  return Math.max(0, Math.floor((ms - VHD_EPOCH_MS) / 1000)) >>> 0;
}

function parseParent(buf: Uint8Array, v: DataView, fileSize: number): ParentFields {
  const nameUnits = buf.subarray(PARENT_NAME_AT, PARENT_NAME_AT + PARENT_NAME_BYTES);
  let name = '';
  for (let i = 0; i + 1 < nameUnits.length; i += 2) {
    const unit = (nameUnits[i]! << 8) | nameUnits[i + 1]!;
    if (unit === 0) break;
    name += String.fromCharCode(unit);
  }
  const locators: ParentLocator[] = [];
  for (let i = 0; i < LOCATOR_ENTRIES; i++) {
    const at = LOCATORS_AT + i * 24;
    if (v.getUint32(at) === 0) continue;
    const loc: ParentLocator = { code: ascii(buf, at, 4), dataSpace: v.getUint32(at + 4), dataLength: v.getUint32(at + 8), dataOffset: u64(v, at + 16) };
    if (loc.dataLength > MAX_LOCATOR_BYTES || loc.dataOffset < 0 || loc.dataOffset + loc.dataLength > fileSize) {
      throw new ImageFormatError(`invalid VHD: parent locator ${i} ("${loc.code}") of ${loc.dataLength} bytes at ${loc.dataOffset} is past the end of the file or too long`);
    }
    locators.push(loc);
  }
  return { uniqueId: buf.slice(40, 56), timestamp: v.getUint32(56), name, locators };
}

export function parseDynHeader(buf: Uint8Array, fileSize: number, differencing = false): DynHeader {
  if (ascii(buf, 0, 8) !== 'cxsparse') throw new ImageFormatError('invalid VHD: no dynamic disk header ("cxsparse")');
  const v = new DataView(buf.buffer, buf.byteOffset, DYN_HEADER_BYTES);
  const h: DynHeader = { tableOffset: u64(v, 16), maxTableEntries: v.getUint32(28), blockSize: v.getUint32(32) };
  if (differencing) h.parent = parseParent(buf, v, fileSize);
  if (h.blockSize < 512 || h.blockSize > 1 << 28 || (h.blockSize & (h.blockSize - 1)) !== 0) {
    throw new ImageFormatError(`invalid VHD: block size ${h.blockSize}`);
  }
  if (h.tableOffset < 0 || h.tableOffset + h.maxTableEntries * 4 > fileSize) {
    throw new ImageFormatError('invalid VHD: block allocation table is past the end of the file (truncated image?)');
  }
  return h;
}

export function serializeDynHeader(h: DynHeader): Uint8Array {
  const buf = new Uint8Array(DYN_HEADER_BYTES);
  const v = new DataView(buf.buffer);
  buf.set(new TextEncoder().encode('cxsparse'), 0);
  setU64(v, 8, -1);
  setU64(v, 16, h.tableOffset);
  v.setUint32(24, 0x00010000);
  v.setUint32(28, h.maxTableEntries);
  v.setUint32(32, h.blockSize);
  if (h.parent) {
    const p = h.parent;
    buf.set(p.uniqueId, 40);
    v.setUint32(56, p.timestamp);
    for (let i = 0; i < Math.min(p.name.length, PARENT_NAME_BYTES / 2 - 1); i++) v.setUint16(PARENT_NAME_AT + i * 2, p.name.charCodeAt(i));
    p.locators.slice(0, LOCATOR_ENTRIES).forEach((loc, i) => {
      const at = LOCATORS_AT + i * 24;
      buf.set(new TextEncoder().encode(loc.code.slice(0, 4)), at);
      v.setUint32(at + 4, loc.dataSpace);
      v.setUint32(at + 8, loc.dataLength);
      setU64(v, at + 16, loc.dataOffset);
    });
  }
  v.setUint32(36, checksum(buf, 36));
  return buf;
}

/** The CHS geometry the VHD specification gives a disk of `sectors` sectors (null: too large). */
export function chsGeometry(sectors: number): Geometry | null {
  if (sectors > 65535 * 16 * 255) return null;
  let spt: number;
  let heads: number;
  let cth: number;
  if (sectors >= 65535 * 16 * 63) {
    spt = 255;
    heads = 16;
    cth = Math.floor(sectors / spt);
  } else {
    spt = 17;
    cth = Math.floor(sectors / spt);
    heads = Math.max(4, Math.floor((cth + 1023) / 1024));
    if (cth >= heads * 1024 || heads > 16) {
      spt = 31;
      heads = 16;
      cth = Math.floor(sectors / spt);
    }
    if (cth >= heads * 1024) {
      spt = 63;
      heads = 16;
      cth = Math.floor(sectors / spt);
    }
  }
  return { cylinders: Math.floor(cth / heads), heads, sectors: spt };
}
