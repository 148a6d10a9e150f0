/**
 * The VMDK text descriptor (VMware Virtual Disk Format 1.1): a header of
 * `key=value` lines (version, CID, parentCID, createType, parentFileNameHint),
 * one line per extent (`ACCESS SECTORS TYPE "FILE" [OFFSET]`) and the disk
 * database (`ddb.key = "value"`). It sits in its own small file (flat and split
 * images), or embedded in the sectors after a sparse extent's header
 * (monolithicSparse, streamOptimized).
 *
 * parseDescriptor never trusts the text: its size, the number of extents, their
 * sizes and their file names are checked, and every problem is an ImageFormatError
 * naming the line. buildDescriptor writes a new one; names that would break the
 * line structure (quotes, control characters) are refused, so nothing a user names
 * can inject an extent or a key. setCid rewrites the CID line in place.
 */
import { ImageFormatError } from '../../node.js';

export type ExtentType = 'FLAT' | 'SPARSE' | 'ZERO' | 'VMFS' | 'VMFSSPARSE';
export type ExtentAccess = 'RW' | 'RDONLY' | 'NOACCESS';

export interface ExtentLine {
  access: ExtentAccess;
  sectors: number;
  type: ExtentType;
  /** The extent file as written (relative to the descriptor's folder unless absolute); '' for ZERO. */
  filename: string;
  /** FLAT/VMFS: where the extent starts in its file, in sectors. */
  offset: number;
}

export interface Descriptor {
  version: number;
  cid: number;
  parentCid: number;
  createType: string;
  parentFileNameHint: string | null;
  extents: ExtentLine[];
  /** ddb.uuid.image as canonical UUID text, or null when absent or not a UUID. */
  uuidImage: string | null;
}

export const NO_PARENT_CID = 0xffffffff;
/** Descriptors larger than this are not descriptors (QEMU's limit is similar). */
export const MAX_DESCRIPTOR_BYTES = 1 << 20;
const MAX_EXTENTS = 4096;
/** Virtual sizes must stay exact as byte counts in a double. */
const MAX_SECTORS = Math.floor(Number.MAX_SAFE_INTEGER / 512);
const EXTENT_TYPES: readonly string[] = ['FLAT', 'SPARSE', 'ZERO', 'VMFS', 'VMFSSPARSE'];
const UNSUPPORTED_TYPES: readonly string[] = ['VMFSRDM', 'VMFSRAW', 'SESPARSE'];

/** A quoted value, or the bare text when it is not quoted. */
function unquote(value: string): string {
  const v = value.trim();
  return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
}

function parseHex32(text: string, what: string): number {
  if (!/^[0-9a-fA-F]{1,8}$/.test(text)) throw new ImageFormatError(`invalid VMDK descriptor: ${what} '${text}' is not a 32-bit hex number`);
  return parseInt(text, 16);
}

/** A UUID written with or without dashes, or as VMware's space-separated bytes, as canonical text (null: not a UUID). */
function canonicalUuid(text: string): string | null {
  const hex = text.replace(/[\s-]/g, '').toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(hex)) return null;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** True when `text` looks like a VMDK descriptor (for probing). */
export function looksLikeDescriptor(text: string): boolean {
  return /^#\s*Disk DescriptorFile/m.test(text) || (/^\s*version\s*=\s*[123]\s*$/m.test(text) && /createType\s*=/.test(text));
}

export function parseDescriptor(text: string): Descriptor {
  if (text.length > MAX_DESCRIPTOR_BYTES) throw new ImageFormatError('invalid VMDK descriptor: larger than 1 MiB');
  const d: Descriptor = {
    version: 1, cid: NO_PARENT_CID, parentCid: NO_PARENT_CID, createType: '', parentFileNameHint: null, extents: [], uuidImage: null,
  };
  let total = 0;
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const ext = /^(RW|RDONLY|NOACCESS)\s+(\d+)\s+([A-Z]+)(?:\s+"([^"]*)"(?:\s+(\d+))?)?\s*$/.exec(line);
    if (ext) {
      const type = ext[3]!;
      if (UNSUPPORTED_TYPES.includes(type)) throw new ImageFormatError(`VMDK extent type ${type} is not supported (line ${i + 1})`);
      if (!EXTENT_TYPES.includes(type)) throw new ImageFormatError(`invalid VMDK descriptor: unknown extent type '${type}' (line ${i + 1})`);
      const sectors = Number(ext[2]);
      const offset = ext[5] !== undefined ? Number(ext[5]) : 0;
      total += sectors;
      if (!Number.isSafeInteger(sectors) || total > MAX_SECTORS || !Number.isSafeInteger(offset) || offset > MAX_SECTORS) {
        throw new ImageFormatError(`invalid VMDK descriptor: extent size or offset out of range (line ${i + 1})`);
      }
      if (type !== 'ZERO' && !ext[4]) throw new ImageFormatError(`invalid VMDK descriptor: extent without a file name (line ${i + 1})`);
      if (d.extents.length >= MAX_EXTENTS) throw new ImageFormatError(`invalid VMDK descriptor: more than ${MAX_EXTENTS} extents`);
      d.extents.push({ access: ext[1] as ExtentAccess, sectors, type: type as ExtentType, filename: ext[4] ?? '', offset });
      continue;
    }
    const kv = /^([A-Za-z0-9_.]+)\s*=\s*(.*)$/.exec(line);
    if (!kv) throw new ImageFormatError(`invalid VMDK descriptor: cannot parse line ${i + 1}`);
    const key = kv[1]!;
    const value = unquote(kv[2]!);
    if (key === 'version') d.version = Number(value);
    else if (key === 'CID') d.cid = parseHex32(value, 'CID');
    else if (key === 'parentCID') d.parentCid = parseHex32(value, 'parentCID');
    else if (key === 'createType') d.createType = value;
    else if (key === 'parentFileNameHint') d.parentFileNameHint = value;
    else if (key === 'ddb.uuid.image') d.uuidImage = canonicalUuid(value);
  }
  if (![1, 2, 3].includes(d.version)) throw new ImageFormatError(`invalid VMDK descriptor: version ${d.version} is not supported`);
  if (d.createType === '') throw new ImageFormatError('invalid VMDK descriptor: no createType');
  return d;
}

/** Throws unless `name` can stand between quotes on a descriptor line. */
export function checkDescriptorName(name: string, what: string): void {
  // eslint-disable-next-line no-control-regex
  if (/["\u0000-\u001f\u007f]/.test(name)) {
    throw new Error(`${what} '${name.replace(/[\u0000-\u001f]/g, '?')}' cannot be written into a VMDK descriptor (quotes or control characters)`);
  }
}

export interface NewDescriptor {
  cid: number;
  parentCid: number;
  createType: string;
  parentFileNameHint: string | null;
  extents: readonly ExtentLine[];
  hwVersion: string;
  cylinders: number;
  heads: number;
  adapterType: string;
  toolsVersion: string;
  /** Extra disk-database lines (ddb.uuid.image, ddb.toolsInstallType), in order. */
  extraDdb: readonly [string, string][];
}

/** The descriptor text of a new image, laid out as qemu-img lays it out. */
export function buildDescriptor(n: NewDescriptor): string {
  if (n.parentFileNameHint !== null) checkDescriptorName(n.parentFileNameHint, 'backing file name');
  const extents = n.extents.map((e) => {
    checkDescriptorName(e.filename, 'extent file name');
    const where = e.type === 'FLAT' || e.type === 'VMFS' ? ` ${e.offset}` : '';
    return `${e.access} ${e.sectors} ${e.type} "${e.filename}"${where}\n`;
  });
  const ddb = [
    ['ddb.virtualHWVersion', n.hwVersion],
    ['ddb.geometry.cylinders', String(n.cylinders)],
    ['ddb.geometry.heads', String(n.heads)],
    ['ddb.geometry.sectors', '63'],
    ['ddb.adapterType', n.adapterType],
    ['ddb.toolsVersion', n.toolsVersion],
    ...n.extraDdb,
  ];
  for (const [, value] of ddb) checkDescriptorName(value!, 'descriptor value');
  return (
    '# Disk DescriptorFile\n' +
    'version=1\n' +
    `CID=${n.cid.toString(16)}\n` +
    `parentCID=${n.parentCid.toString(16)}\n` +
    `createType="${n.createType}"\n` +
    (n.parentFileNameHint !== null ? `parentFileNameHint="${n.parentFileNameHint}"\n` : '') +
    '\n# Extent description\n' +
    extents.join('') +
    '\n# The Disk Data Base\n#DDB\n\n' +
    ddb.map(([k, v]) => `${k} = "${v}"\n`).join('')
  );
}

/** `text` with its CID line replaced by `cid`. */
export function setCid(text: string, cid: number): string {
  return text.replace(/^(\s*CID\s*=\s*)[0-9a-fA-F]+/m, `$1${cid.toString(16)}`);
}
