/**
 * Persistent dirty bitmaps of a qcow2 image, as `img info` lists them and `img
 * measure` sizes them (docs/interop/qcow2.txt, "Bitmaps extension" and "Bitmap
 * directory").
 *
 * The bitmaps extension names the bitmap directory: nb_bitmaps entries, each a
 * 24-byte fixed part (bitmap table offset and size, flags, type, granularity
 * bits, name size, extra data size), its extra data, then its name, padded to 8
 * bytes. Only the directory is read (the bitmap tables and data are not needed
 * to list the bitmaps). As in QEMU, the extension counts only in a version 3
 * image whose autoclear "bitmaps" bit is set: a program without bitmap support
 * that wrote the image cleared it, so the bitmaps are stale and not listed. A
 * directory that breaks the spec's rules (size, entry bounds, name length,
 * granularity, type, reserved flags) fails the open with a message naming the
 * rule, as QEMU refuses it.
 *
 * Listing: flags "in-use" then "auto", name, granularity, in directory order;
 * the "bitmaps" key follows "lazy-refcounts" in qcow2's format-specific data and
 * is left out when there are none (qemu-img 7.2's ImageInfoSpecificQCow2).
 */
import { ImageFormatError } from '../../node.js';
import type { FormatSpecificInfo } from '../format.js';
import { AUTOCLEAR_BITMAPS } from './header.js';
import type { Qcow2Node } from './node.js';

export interface Qcow2BitmapInfo {
  flags: ('in-use' | 'auto')[];
  name: string;
  granularity: number;
}

const ENTRY_FIXED_BYTES = 24;
const MAX_DIRECTORY_BYTES = 64 * 1024 * 1024;
const MAX_NAME_BYTES = 1023;
const MIN_GRANULARITY_BITS = 9;
const MAX_GRANULARITY_BITS = 31;
const TYPE_DIRTY_TRACKING = 1;
const FLAG_IN_USE = 1 << 0;
const FLAG_AUTO = 1 << 1;
const FLAG_EXTRA_DATA_COMPATIBLE = 1 << 2;
const KNOWN_FLAGS = FLAG_IN_USE | FLAG_AUTO | FLAG_EXTRA_DATA_COMPATIBLE;

/** Parses a bitmap directory of `count` entries; throws naming the first broken rule. */
export function parseBitmapDirectory(dir: Uint8Array, count: number): Qcow2BitmapInfo[] {
  const dv = new DataView(dir.buffer, dir.byteOffset, dir.byteLength);
  const list: Qcow2BitmapInfo[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    const fail = (why: string): never => {
      throw new ImageFormatError(`qcow2 bitmap directory entry ${i}: ${why}`);
    };
    if (at + ENTRY_FIXED_BYTES > dir.length) fail('extends past the end of the bitmap directory');
    const flags = dv.getUint32(at + 12);
    const type = dv.getUint8(at + 16);
    const granularityBits = dv.getUint8(at + 17);
    const nameSize = dv.getUint16(at + 18);
    const extraSize = dv.getUint32(at + 20);
    const nameAt = at + ENTRY_FIXED_BYTES + extraSize;
    if (nameAt + nameSize > dir.length) fail('extends past the end of the bitmap directory');
    if (flags & ~KNOWN_FLAGS) fail(`reserved flags 0x${(flags & ~KNOWN_FLAGS).toString(16)} are set`);
    if (type !== TYPE_DIRTY_TRACKING) fail(`unknown bitmap type ${type}`);
    if (granularityBits < MIN_GRANULARITY_BITS || granularityBits > MAX_GRANULARITY_BITS) {
      fail(`granularity bits ${granularityBits} are outside ${MIN_GRANULARITY_BITS}..${MAX_GRANULARITY_BITS}`);
    }
    if (nameSize === 0 || nameSize > MAX_NAME_BYTES) fail(`name size ${nameSize} is outside 1..${MAX_NAME_BYTES}`);
    if (extraSize !== 0 && !(flags & FLAG_EXTRA_DATA_COMPATIBLE)) fail('has extra data this implementation does not know');
    const named: Qcow2BitmapInfo['flags'] = [];
    if (flags & FLAG_IN_USE) named.push('in-use');
    if (flags & FLAG_AUTO) named.push('auto');
    const name = new TextDecoder().decode(dir.subarray(nameAt, nameAt + nameSize));
    list.push({ flags: named, name, granularity: 2 ** granularityBits });
    at = Math.ceil((nameAt + nameSize) / 8) * 8;
  }
  return list;
}

/** The image's valid persistent bitmaps, read from its directory ([] when it has none or they are stale). */
export async function readQcow2Bitmaps(node: Qcow2Node): Promise<Qcow2BitmapInfo[]> {
  const h = node.header;
  const ext = h.bitmaps;
  if (!ext || h.version < 3 || !(h.autoclearFeatures & AUTOCLEAR_BITMAPS)) return [];
  if (ext.directorySize > MAX_DIRECTORY_BYTES || ext.directorySize < ext.nbBitmaps * ENTRY_FIXED_BYTES) {
    throw new ImageFormatError(`${node.filename}: qcow2 bitmap directory size ${ext.directorySize} is invalid`);
  }
  if (ext.directoryOffset + ext.directorySize > node.file.size()) {
    throw new ImageFormatError(`${node.filename}: qcow2 bitmap directory extends past the end of the file`);
  }
  const dir = new Uint8Array(ext.directorySize);
  await node.file.read(ext.directoryOffset, dir);
  try {
    return parseBitmapDirectory(dir, ext.nbBitmaps);
  } catch (e) {
    throw new ImageFormatError(`${node.filename}: ${(e as Error).message}`);
  }
}

/** `info` with "bitmaps" placed after "lazy-refcounts", as qemu-img orders qcow2's data. */
export function withBitmapsInfo(info: FormatSpecificInfo, bitmaps: readonly Qcow2BitmapInfo[]): FormatSpecificInfo {
  if (bitmaps.length === 0 || !('lazy-refcounts' in info.data)) return info;
  const data: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(info.data)) {
    data[key] = value;
    if (key === 'lazy-refcounts') data.bitmaps = bitmaps;
  }
  return { ...info, data };
}
