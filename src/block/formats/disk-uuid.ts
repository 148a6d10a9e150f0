/**
 * The disk UUID of formats that carry one (vdi, vmdk's ddb.uuid.image, vpc, vhdx).
 * VirtualBox's media registry refuses two disks with one UUID, so create and
 * convert give every new image a fresh random (version 4) UUID unless the `uuid`
 * option sets one: `-o uuid=UUID` writes that UUID, and convert's `-o uuid=keep`
 * copies the source image's disk UUID (ops/convert.ts resolves "keep" to the
 * source's UUID before the format sees the options).
 *
 * UUIDs travel as canonical lower-case text; uuidBytes() gives RFC 4122 byte order,
 * guidBytes() the order of Microsoft GUIDs (first three fields little-endian), in
 * which VDI and VHDX store theirs.
 */
import { randomUUID } from 'node:crypto';
import type { CreateOptionSpec } from './format.js';

export const DISK_UUID_OPTION: CreateOptionSpec = {
  name: 'uuid',
  type: 'str',
  help: "Disk UUID of the new image (default: a new random one; convert: 'keep' copies the source's)",
};

const UUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The disk UUID a new image gets from its `-o` options: the one given, else a random one. */
export function diskUuidFromOptions(options: Map<string, string>): string {
  const given = options.get('uuid');
  if (given === undefined || given === '') return randomUUID();
  if (given === 'keep') throw new Error("Parameter 'uuid': 'keep' needs a source image (img convert)");
  if (!UUID_TEXT.test(given)) {
    throw new Error(`Parameter 'uuid' expects a UUID like 01234567-89ab-cdef-0123-456789abcdef, not '${given}'`);
  }
  return given.toLowerCase();
}

/** The 16 bytes of a UUID in RFC 4122 (big-endian) order. */
export function uuidBytes(uuid: string): Uint8Array {
  const hex = uuid.replace(/-/g, '');
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** Canonical text of 16 bytes in RFC 4122 order. */
export function uuidText(bytes: Uint8Array): string {
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Swaps a UUID's first three fields between RFC 4122 and GUID (little-endian) byte order, in place. */
function swapGuidFields(bytes: Uint8Array): Uint8Array {
  bytes.subarray(0, 4).reverse();
  bytes.subarray(4, 6).reverse();
  bytes.subarray(6, 8).reverse();
  return bytes;
}

/** The 16 bytes of a UUID as a GUID stores them (VDI, VHDX). */
export function guidBytes(uuid: string): Uint8Array {
  return swapGuidFields(uuidBytes(uuid));
}

/** Canonical text of 16 bytes stored in GUID order. */
export function guidBytesText(bytes: Uint8Array): string {
  return uuidText(swapGuidFields(bytes.slice()));
}
