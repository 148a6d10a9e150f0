/**
 * The qcow2 image header (QEMU docs/interop/qcow2.txt, "Header" and "Header
 * extensions"): parsing, validation and serialization.
 *
 * The header lives in the image's first cluster: the fixed fields (72 bytes for
 * version 2; header_length ≥ 104 bytes for version 3, with the one-byte
 * compression_type at 104 and padding to a multiple of 8), then header
 * extensions (type, length, data padded to 8 bytes) until a type-0 terminator,
 * then the backing file name. parseQcow2Header takes the first cluster's bytes
 * (or the whole file when it is shorter) and the file's size, and rejects hostile
 * values with an ImageFormatError that names the field: cluster_bits outside
 * 9..21, refcount_order > 6, tables that are misaligned, overlap the header, lie
 * past the end of the file or are absurdly large, an L1 table too small for the
 * virtual size, unknown incompatible features (named from the image's feature
 * name table when it has one), encryption, over-long names, truncated files.
 *
 * serializeQcow2Header writes the header back as one whole first cluster, in the
 * order QEMU writes it: fixed fields, backing format, external data file name,
 * encryption pointer, feature name table (version 3), bitmaps, the unknown
 * extensions preserved from parsing, the terminator, then the backing file name.
 *
 * Feature bitmasks are bigints (all 64 bits matter for "unknown feature" checks);
 * offsets and sizes are numbers, and values above 2^53 are rejected when parsing.
 */
import { ImageFormatError } from '../../node.js';

/** "QFI\xfb" read as a big-endian 32-bit number. */
export const QCOW2_MAGIC = 0x514649fb;

export const QCOW2_V2_HEADER_LENGTH = 72;
/** The shortest version 3 header (through header_length). */
export const QCOW2_V3_MIN_HEADER_LENGTH = 104;
/** The version 3 header QEMU writes: through compression_type, padded to 8. */
export const QCOW2_V3_HEADER_LENGTH = 112;

export const MIN_CLUSTER_BITS = 9;
export const MAX_CLUSTER_BITS = 21;
/** Extended L2 entries need clusters of at least 16 KiB. */
export const MIN_EXTENDED_L2_CLUSTER_BITS = 14;
export const MAX_REFCOUNT_ORDER = 6;
/** QEMU's implementation limits (QCOW_MAX_L1_SIZE, QCOW_MAX_REFTABLE_SIZE, QCOW_MAX_SNAPSHOTS). */
export const MAX_L1_BYTES = 32 * 2 ** 20;
export const MAX_REFCOUNT_TABLE_BYTES = 8 * 2 ** 20;
export const MAX_SNAPSHOTS = 65536;
export const MAX_BACKING_NAME_BYTES = 1023;
/** Backing format names are short ("qcow2", "raw", …); QEMU's buffer is 16 bytes. */
export const MAX_BACKING_FORMAT_BYTES = 15;
export const MAX_BITMAPS = 65535;

export const INCOMPAT_DIRTY = 1n << 0n;
export const INCOMPAT_CORRUPT = 1n << 1n;
export const INCOMPAT_DATA_FILE = 1n << 2n;
export const INCOMPAT_COMPRESSION = 1n << 3n;
export const INCOMPAT_EXTENDED_L2 = 1n << 4n;
export const INCOMPAT_KNOWN =
  INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTENDED_L2;

export const COMPAT_LAZY_REFCOUNTS = 1n << 0n;

export const AUTOCLEAR_BITMAPS = 1n << 0n;
export const AUTOCLEAR_DATA_FILE_RAW = 1n << 1n;

export const EXT_END = 0x00000000;
export const EXT_BACKING_FORMAT = 0xe2792aca;
export const EXT_FEATURE_TABLE = 0x6803f857;
export const EXT_BITMAPS = 0x23852875;
export const EXT_CRYPTO_HEADER = 0x0537be77;
export const EXT_DATA_FILE = 0x44415441;

export const COMPRESSION_ZLIB = 0;
export const COMPRESSION_ZSTD = 1;
export type CompressionType = 'zlib' | 'zstd';
export const COMPRESSION_NAMES: readonly CompressionType[] = ['zlib', 'zstd'];

export type FeatureKind = 'incompatible' | 'compatible' | 'autoclear';
const FEATURE_KINDS: readonly FeatureKind[] = ['incompatible', 'compatible', 'autoclear'];
const FEATURE_ENTRY_BYTES = 48;
const FEATURE_NAME_BYTES = 46;

export interface FeatureName {
  kind: FeatureKind;
  bit: number;
  name: string;
}

/** The feature name table QEMU writes into every version 3 image it creates. */
export const STANDARD_FEATURE_NAMES: readonly FeatureName[] = [
  { kind: 'incompatible', bit: 0, name: 'dirty bit' },
  { kind: 'incompatible', bit: 1, name: 'corrupt bit' },
  { kind: 'incompatible', bit: 2, name: 'external data file' },
  { kind: 'incompatible', bit: 3, name: 'compression type' },
  { kind: 'incompatible', bit: 4, name: 'extended L2 entries' },
  { kind: 'compatible', bit: 0, name: 'lazy refcounts' },
  { kind: 'autoclear', bit: 0, name: 'bitmaps' },
  { kind: 'autoclear', bit: 1, name: 'raw external data' },
];

/** The bitmaps extension's fields (the bitmap directory itself is not parsed here). */
export interface BitmapsExtension {
  nbBitmaps: number;
  directorySize: number;
  directoryOffset: number;
}

/** The full disk encryption header pointer extension. */
export interface CryptoHeaderExtension {
  offset: number;
  length: number;
}

export interface UnknownExtension {
  type: number;
  data: Uint8Array;
}

export interface Qcow2Header {
  version: 2 | 3;
  clusterBits: number;
  /** Virtual disk size in bytes. */
  size: number;
  /** 0 none, 1 AES, 2 LUKS (parsing rejects 1 and 2: encryption is not supported). */
  cryptMethod: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  incompatibleFeatures: bigint;
  compatibleFeatures: bigint;
  autoclearFeatures: bigint;
  /** refcount_bits = 1 << refcountOrder (always 4 for version 2). */
  refcountOrder: number;
  /** As read (72 for version 2); serialization recomputes it. */
  headerLength: number;
  compressionType: CompressionType;
  /**
   * Version 3 header bytes after compression_type up to header_length (padding and
   * fields newer than this implementation), kept so they survive a rewrite.
   */
  unknownHeaderFields: Uint8Array;
  backingFilename: string | null;
  backingFormat: string | null;
  /** External data file name extension (images using one are refused by the driver). */
  dataFile: string | null;
  cryptoHeader: CryptoHeaderExtension | null;
  featureNames: FeatureName[];
  bitmaps: BitmapsExtension | null;
  /** Extensions this implementation does not know, in file order. */
  unknownExtensions: UnknownExtension[];
}

/** Derived numbers every qcow2 module needs. */
export function clusterSizeOf(h: Qcow2Header): number {
  return 2 ** h.clusterBits;
}

export function refcountBitsOf(h: Qcow2Header): number {
  return 2 ** h.refcountOrder;
}

export function hasExtendedL2(h: Qcow2Header): boolean {
  return (h.incompatibleFeatures & INCOMPAT_EXTENDED_L2) !== 0n;
}

/** Bytes per L2 entry: 8, or 16 with extended L2 entries. */
export function l2EntryBytesOf(h: Qcow2Header): number {
  return hasExtendedL2(h) ? 16 : 8;
}

/** Entries per L2 table. */
export function l2EntriesOf(h: Qcow2Header): number {
  return clusterSizeOf(h) / l2EntryBytesOf(h);
}

/** L1 entries needed to map `size` virtual bytes. */
export function l1EntriesFor(size: number, clusterBits: number, extendedL2: boolean): number {
  const clusterSize = 2 ** clusterBits;
  const bytesPerL2 = clusterSize * (clusterSize / (extendedL2 ? 16 : 8));
  return Math.ceil(size / bytesPerL2);
}

/**
 * True when the first bytes of a file carry the qcow2 magic. The version is not
 * looked at: like QEMU, an unknown version is qcow2 that fails to open with an
 * error naming the version, not a raw image.
 */
export function looksLikeQcow2(bytes: Uint8Array): boolean {
  if (bytes.length < 4) return false;
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0) === QCOW2_MAGIC;
}

function fail(message: string): never {
  throw new ImageFormatError(message);
}

function u64(dv: DataView, at: number, field: string): number {
  const v = dv.getBigUint64(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`qcow2 header field ${field} is too large (${v})`);
  return Number(v);
}

const utf8 = new TextDecoder('utf-8');
const utf8enc = new TextEncoder();

/**
 * Parses and validates the header. `bytes` holds the start of the file: at least
 * the whole first cluster, or the whole file when it is shorter than a cluster.
 */
export interface ParseOptions {
  /**
   * For `check`: accept tables that overlap the header or lie past the end of
   * the file, as QEMU's open does (the check then reports the damage). Alignment
   * and size limits still apply.
   */
  forCheck?: boolean;
}

export function parseQcow2Header(bytes: Uint8Array, fileSize: number, opts: ParseOptions = {}): Qcow2Header {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 8 || dv.getUint32(0) !== QCOW2_MAGIC) fail('Image is not in qcow2 format');
  const version = dv.getUint32(4);
  if (version !== 2 && version !== 3) fail(`Unsupported qcow2 version ${version}`);
  if (bytes.length < QCOW2_V2_HEADER_LENGTH) {
    fail(`qcow2 image is truncated: ${bytes.length} bytes is shorter than the ${QCOW2_V2_HEADER_LENGTH}-byte header`);
  }

  const clusterBits = dv.getUint32(20);
  if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    fail(`Unsupported cluster size: 2^${clusterBits} (cluster_bits must be ${MIN_CLUSTER_BITS}..${MAX_CLUSTER_BITS})`);
  }
  const clusterSize = 2 ** clusterBits;

  let headerLength = QCOW2_V2_HEADER_LENGTH;
  let incompatibleFeatures = 0n;
  let compatibleFeatures = 0n;
  let autoclearFeatures = 0n;
  let refcountOrder = 4;
  if (version === 3) {
    if (bytes.length < QCOW2_V3_MIN_HEADER_LENGTH) {
      fail(`qcow2 image is truncated: ${bytes.length} bytes is shorter than the version 3 header`);
    }
    headerLength = dv.getUint32(100);
    if (headerLength < QCOW2_V3_MIN_HEADER_LENGTH) {
      fail(`qcow2 header_length ${headerLength} is too small (version 3 needs at least ${QCOW2_V3_MIN_HEADER_LENGTH})`);
    }
    incompatibleFeatures = dv.getBigUint64(72);
    compatibleFeatures = dv.getBigUint64(80);
    autoclearFeatures = dv.getBigUint64(88);
    refcountOrder = dv.getUint32(96);
  }
  if (headerLength > clusterSize) fail(`qcow2 header_length ${headerLength} exceeds the cluster size ${clusterSize}`);
  // Everything in the first cluster must be readable: a shorter file is truncated.
  const headerAreaEnd = Math.min(clusterSize, Math.max(fileSize, headerLength));
  if (bytes.length < headerAreaEnd) {
    fail(`qcow2 image is truncated: the header cluster needs ${headerAreaEnd} bytes, only ${bytes.length} present`);
  }
  if (fileSize < headerLength) fail(`qcow2 image is truncated: file has ${fileSize} bytes, header needs ${headerLength}`);
  if (refcountOrder > MAX_REFCOUNT_ORDER) {
    fail(`Reference count entry width too large; may not exceed 64 bits (refcount_order ${refcountOrder})`);
  }

  let compressionType: CompressionType = 'zlib';
  let unknownHeaderFields = new Uint8Array(0);
  if (version === 3 && headerLength > QCOW2_V3_MIN_HEADER_LENGTH) {
    const code = bytes[QCOW2_V3_MIN_HEADER_LENGTH]!;
    const name = COMPRESSION_NAMES[code];
    if (name === undefined) fail(`Unknown qcow2 compression type ${code}`);
    compressionType = name;
    unknownHeaderFields = bytes.slice(QCOW2_V3_MIN_HEADER_LENGTH + 1, headerLength);
  }
  const hasCompressionBit = (incompatibleFeatures & INCOMPAT_COMPRESSION) !== 0n;
  if (hasCompressionBit && compressionType === 'zlib') {
    fail('qcow2 compression type incompatible feature bit is set but the compression_type field is zlib (0)');
  }
  if (!hasCompressionBit && compressionType !== 'zlib') {
    fail(`qcow2 compression_type is ${compressionType} but the compression type incompatible feature bit is not set`);
  }

  const backingFileOffset = u64(dv, 8, 'backing_file_offset');
  const backingFileSize = dv.getUint32(16);
  const header: Qcow2Header = {
    version,
    clusterBits,
    size: u64(dv, 24, 'size'),
    cryptMethod: dv.getUint32(32),
    l1Size: dv.getUint32(36),
    l1TableOffset: u64(dv, 40, 'l1_table_offset'),
    refcountTableOffset: u64(dv, 48, 'refcount_table_offset'),
    refcountTableClusters: dv.getUint32(56),
    nbSnapshots: dv.getUint32(60),
    snapshotsOffset: u64(dv, 64, 'snapshots_offset'),
    incompatibleFeatures,
    compatibleFeatures,
    autoclearFeatures,
    refcountOrder,
    headerLength,
    compressionType,
    unknownHeaderFields,
    backingFilename: null,
    backingFormat: null,
    dataFile: null,
    cryptoHeader: null,
    featureNames: [],
    bitmaps: null,
    unknownExtensions: [],
  };

  const extensionsEnd = backingFileOffset !== 0 ? Math.min(backingFileOffset, clusterSize) : clusterSize;
  parseExtensions(bytes, header, Math.min(extensionsEnd, bytes.length));

  if (backingFileOffset !== 0) {
    if (backingFileSize > MAX_BACKING_NAME_BYTES) {
      fail(`Backing file name too long: ${backingFileSize} bytes (at most ${MAX_BACKING_NAME_BYTES})`);
    }
    if (backingFileOffset < headerLength || backingFileOffset + backingFileSize > clusterSize) {
      fail(`qcow2 backing file name (offset ${backingFileOffset}, ${backingFileSize} bytes) lies outside the header cluster`);
    }
    if (backingFileOffset + backingFileSize > bytes.length) {
      fail('qcow2 image is truncated inside the backing file name');
    }
    header.backingFilename = utf8.decode(bytes.subarray(backingFileOffset, backingFileOffset + backingFileSize));
  }

  validateFeatures(header);
  validateTables(header, fileSize, opts.forCheck ?? false);
  return header;
}

function parseExtensions(bytes: Uint8Array, h: Qcow2Header, end: number): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const seen = new Set<number>();
  let at = h.headerLength;
  while (at + 8 <= end) {
    const type = dv.getUint32(at);
    const length = dv.getUint32(at + 4);
    at += 8;
    if (type === EXT_END) return;
    if (length > end - at) {
      fail(`qcow2 header extension 0x${type.toString(16)} is too large (${length} bytes past the header area)`);
    }
    const data = bytes.subarray(at, at + length);
    if (seen.has(type) && type !== EXT_FEATURE_TABLE) {
      fail(`qcow2 header extension 0x${type.toString(16)} appears more than once`);
    }
    seen.add(type);
    parseExtension(h, type, data);
    at += Math.ceil(length / 8) * 8;
  }
}

function parseExtension(h: Qcow2Header, type: number, data: Uint8Array): void {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  switch (type) {
    case EXT_BACKING_FORMAT:
      if (data.length > MAX_BACKING_FORMAT_BYTES) {
        fail(`qcow2 backing format extension is too long (${data.length} bytes, at most ${MAX_BACKING_FORMAT_BYTES})`);
      }
      h.backingFormat = utf8.decode(data);
      return;
    case EXT_DATA_FILE:
      if (data.length > MAX_BACKING_NAME_BYTES) fail(`qcow2 external data file name is too long (${data.length} bytes)`);
      h.dataFile = utf8.decode(data);
      return;
    case EXT_CRYPTO_HEADER:
      if (data.length !== 16) fail(`qcow2 encryption header extension has length ${data.length}, expected 16`);
      h.cryptoHeader = { offset: u64(dv, 0, 'crypto header offset'), length: u64(dv, 8, 'crypto header length') };
      return;
    case EXT_FEATURE_TABLE:
      for (let i = 0; i + FEATURE_ENTRY_BYTES <= data.length; i += FEATURE_ENTRY_BYTES) {
        const kind = FEATURE_KINDS[data[i]!];
        const bit = data[i + 1]!;
        if (kind === undefined || bit > 63) continue; // Unknown kinds are informational only.
        const raw = data.subarray(i + 2, i + 2 + FEATURE_NAME_BYTES);
        const nul = raw.indexOf(0);
        h.featureNames.push({ kind, bit, name: utf8.decode(nul < 0 ? raw : raw.subarray(0, nul)) });
      }
      return;
    case EXT_BITMAPS: {
      if (data.length !== 24) fail(`qcow2 bitmaps extension has length ${data.length}, expected 24`);
      const nbBitmaps = dv.getUint32(0);
      if (dv.getUint32(4) !== 0) fail('qcow2 bitmaps extension: reserved field is not zero');
      if (nbBitmaps < 1 || nbBitmaps > MAX_BITMAPS) fail(`qcow2 bitmaps extension: invalid bitmap count ${nbBitmaps}`);
      h.bitmaps = {
        nbBitmaps,
        directorySize: u64(dv, 8, 'bitmap_directory_size'),
        directoryOffset: u64(dv, 16, 'bitmap_directory_offset'),
      };
      if (h.bitmaps.directoryOffset % clusterSizeOf(h) !== 0) {
        fail(`qcow2 bitmaps extension: directory offset ${h.bitmaps.directoryOffset} is not cluster aligned`);
      }
      return;
    }
    default:
      h.unknownExtensions.push({ type, data: data.slice() });
  }
}

/** The names of the set bits in `mask` of `kind`, from the image's feature table where it has them. */
export function describeFeatures(h: Qcow2Header, kind: FeatureKind, mask: bigint): string[] {
  const names: string[] = [];
  for (let bit = 0; bit < 64; bit++) {
    if ((mask & (1n << BigInt(bit))) === 0n) continue;
    const known = h.featureNames.find((f) => f.kind === kind && f.bit === bit) ??
      STANDARD_FEATURE_NAMES.find((f) => f.kind === kind && f.bit === bit);
    names.push(known ? known.name : `Unknown ${kind} feature bit ${bit}`);
  }
  return names;
}

function validateFeatures(h: Qcow2Header): void {
  const unknown = h.incompatibleFeatures & ~INCOMPAT_KNOWN;
  if (unknown !== 0n) {
    fail(`Unsupported qcow2 feature(s): ${describeFeatures(h, 'incompatible', unknown).join(', ')}`);
  }
  if (h.cryptMethod === 1 || h.cryptMethod === 2) {
    fail(`Encrypted qcow2 images are not supported (crypt_method ${h.cryptMethod === 1 ? 'aes' : 'luks'})`);
  }
  if (h.cryptMethod !== 0) fail(`Unsupported qcow2 encryption method: ${h.cryptMethod}`);
  if (hasExtendedL2(h) && h.clusterBits < MIN_EXTENDED_L2_CLUSTER_BITS) {
    fail(`qcow2 extended L2 entries need a cluster size of at least 16k (cluster_bits ${h.clusterBits})`);
  }
  if ((h.autoclearFeatures & AUTOCLEAR_DATA_FILE_RAW) !== 0n && (h.incompatibleFeatures & INCOMPAT_DATA_FILE) === 0n) {
    fail('qcow2 raw external data bit is set without an external data file');
  }
}

function validateTable(h: Qcow2Header, fileSize: number, what: string, offset: number, bytes: number, forCheck: boolean): void {
  const clusterSize = clusterSizeOf(h);
  if (offset % clusterSize !== 0) fail(`Invalid ${what} offset ${offset}: not aligned to the cluster size ${clusterSize}`);
  if (bytes === 0 || forCheck) return;
  if (offset < clusterSize) fail(`Invalid ${what} offset ${offset}: overlaps the qcow2 header`);
  if (offset + bytes > fileSize) {
    fail(`Invalid ${what} offset ${offset}: the ${bytes}-byte table ends past the end of the file (${fileSize} bytes)`);
  }
}

function validateTables(h: Qcow2Header, fileSize: number, forCheck: boolean): void {
  const clusterSize = clusterSizeOf(h);
  if (h.refcountTableClusters === 0) fail('Image does not contain a reference count table');
  const refcountTableBytes = h.refcountTableClusters * clusterSize;
  if (refcountTableBytes > MAX_REFCOUNT_TABLE_BYTES) {
    fail(`Reference count table too large: ${h.refcountTableClusters} clusters (at most ${MAX_REFCOUNT_TABLE_BYTES} bytes)`);
  }
  validateTable(h, fileSize, 'reference count table', h.refcountTableOffset, refcountTableBytes, forCheck);

  if (h.l1Size * 8 > MAX_L1_BYTES) fail(`Active L1 table too large: ${h.l1Size} entries`);
  const needed = l1EntriesFor(h.size, h.clusterBits, hasExtendedL2(h));
  if (needed * 8 > MAX_L1_BYTES) fail(`Image size ${h.size} is too large for the cluster size ${clusterSize}`);
  if (h.l1Size < needed) {
    fail(`L1 table is too small: ${h.l1Size} entries map less than the virtual size ${h.size} (needs ${needed})`);
  }
  validateTable(h, fileSize, 'L1 table', h.l1TableOffset, h.l1Size * 8, forCheck);

  if (h.nbSnapshots > MAX_SNAPSHOTS) fail(`Too many snapshots: ${h.nbSnapshots} (at most ${MAX_SNAPSHOTS})`);
  // Each snapshot table entry is at least 40 bytes.
  validateTable(h, fileSize, 'snapshot table', h.snapshotsOffset, h.nbSnapshots * 40, forCheck);
}

/**
 * Serializes the header into a whole first cluster (zero-filled after the backing
 * file name). Throws if it does not fit in one cluster.
 */
export function serializeQcow2Header(h: Qcow2Header): Uint8Array {
  const clusterSize = clusterSizeOf(h);
  const out = new Uint8Array(clusterSize);
  const dv = new DataView(out.buffer);
  const headerLength = h.version === 2
    ? QCOW2_V2_HEADER_LENGTH
    : Math.max(QCOW2_V3_HEADER_LENGTH, Math.ceil((QCOW2_V3_MIN_HEADER_LENGTH + 1 + h.unknownHeaderFields.length) / 8) * 8);

  const extensions: UnknownExtension[] = [];
  if (h.backingFormat !== null) extensions.push({ type: EXT_BACKING_FORMAT, data: utf8enc.encode(h.backingFormat) });
  if (h.dataFile !== null) extensions.push({ type: EXT_DATA_FILE, data: utf8enc.encode(h.dataFile) });
  if (h.cryptoHeader !== null) {
    const data = new Uint8Array(16);
    const cdv = new DataView(data.buffer);
    cdv.setBigUint64(0, BigInt(h.cryptoHeader.offset));
    cdv.setBigUint64(8, BigInt(h.cryptoHeader.length));
    extensions.push({ type: EXT_CRYPTO_HEADER, data });
  }
  const featureTable: UnknownExtension | null =
    h.version === 3 ? { type: EXT_FEATURE_TABLE, data: encodeFeatureTable(h.featureNames) } : null;
  if (featureTable) extensions.push(featureTable);
  if (h.bitmaps !== null) {
    const data = new Uint8Array(24);
    const bdv = new DataView(data.buffer);
    bdv.setUint32(0, h.bitmaps.nbBitmaps);
    bdv.setBigUint64(8, BigInt(h.bitmaps.directorySize));
    bdv.setBigUint64(16, BigInt(h.bitmaps.directoryOffset));
    extensions.push({ type: EXT_BITMAPS, data });
  }
  extensions.push(...h.unknownExtensions);
  const backingBytes = h.backingFilename !== null ? utf8enc.encode(h.backingFilename) : new Uint8Array(0);
  if (backingBytes.length > MAX_BACKING_NAME_BYTES) {
    fail(`Backing file name too long: ${backingBytes.length} bytes (at most ${MAX_BACKING_NAME_BYTES})`);
  }
  // The feature name table is optional: like QEMU, leave it out when it does not fit.
  const total = extensions.reduce((n, e) => n + 8 + Math.ceil(e.data.length / 8) * 8, headerLength + 8) + backingBytes.length;
  if (total > clusterSize && featureTable) extensions.splice(extensions.indexOf(featureTable), 1);

  let at = headerLength;
  const need = (n: number): void => {
    if (at + n > clusterSize) fail(`qcow2 header and extensions do not fit in one ${clusterSize}-byte cluster`);
  };
  for (const ext of extensions) {
    const padded = Math.ceil(ext.data.length / 8) * 8;
    need(8 + padded);
    dv.setUint32(at, ext.type);
    dv.setUint32(at + 4, ext.data.length);
    out.set(ext.data, at + 8);
    at += 8 + padded;
  }
  need(8);
  at += 8; // EXT_END: type 0, length 0.

  let backingOffset = 0;
  if (h.backingFilename !== null) {
    need(backingBytes.length);
    backingOffset = at;
    out.set(backingBytes, at);
  }

  dv.setUint32(0, QCOW2_MAGIC);
  dv.setUint32(4, h.version);
  dv.setBigUint64(8, BigInt(backingOffset));
  dv.setUint32(16, backingBytes.length);
  dv.setUint32(20, h.clusterBits);
  dv.setBigUint64(24, BigInt(h.size));
  dv.setUint32(32, h.cryptMethod);
  dv.setUint32(36, h.l1Size);
  dv.setBigUint64(40, BigInt(h.l1TableOffset));
  dv.setBigUint64(48, BigInt(h.refcountTableOffset));
  dv.setUint32(56, h.refcountTableClusters);
  dv.setUint32(60, h.nbSnapshots);
  dv.setBigUint64(64, BigInt(h.snapshotsOffset));
  if (h.version === 3) {
    dv.setBigUint64(72, h.incompatibleFeatures);
    dv.setBigUint64(80, h.compatibleFeatures);
    dv.setBigUint64(88, h.autoclearFeatures);
    dv.setUint32(96, h.refcountOrder);
    dv.setUint32(100, headerLength);
    out[QCOW2_V3_MIN_HEADER_LENGTH] = COMPRESSION_NAMES.indexOf(h.compressionType);
    out.set(h.unknownHeaderFields, QCOW2_V3_MIN_HEADER_LENGTH + 1);
  }
  return out;
}

function encodeFeatureTable(names: readonly FeatureName[]): Uint8Array {
  const table = names.length > 0 ? names : STANDARD_FEATURE_NAMES;
  const data = new Uint8Array(table.length * FEATURE_ENTRY_BYTES);
  table.forEach((f, i) => {
    data[i * FEATURE_ENTRY_BYTES] = FEATURE_KINDS.indexOf(f.kind);
    data[i * FEATURE_ENTRY_BYTES + 1] = f.bit;
    data.set(utf8enc.encode(f.name).subarray(0, FEATURE_NAME_BYTES), i * FEATURE_ENTRY_BYTES + 2);
  });
  return data;
}

/** A fresh header for a new image: no snapshots, no extensions beyond what is given. */
export function newQcow2Header(fields: {
  version: 2 | 3;
  clusterBits: number;
  size: number;
  refcountOrder: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  incompatibleFeatures?: bigint;
  compatibleFeatures?: bigint;
  compressionType?: CompressionType;
  backingFilename?: string | null;
  backingFormat?: string | null;
}): Qcow2Header {
  return {
    version: fields.version,
    clusterBits: fields.clusterBits,
    size: fields.size,
    cryptMethod: 0,
    l1Size: fields.l1Size,
    l1TableOffset: fields.l1TableOffset,
    refcountTableOffset: fields.refcountTableOffset,
    refcountTableClusters: fields.refcountTableClusters,
    nbSnapshots: 0,
    snapshotsOffset: 0,
    incompatibleFeatures: fields.incompatibleFeatures ?? 0n,
    compatibleFeatures: fields.compatibleFeatures ?? 0n,
    autoclearFeatures: 0n,
    refcountOrder: fields.refcountOrder,
    headerLength: fields.version === 2 ? QCOW2_V2_HEADER_LENGTH : QCOW2_V3_HEADER_LENGTH,
    compressionType: fields.compressionType ?? 'zlib',
    unknownHeaderFields: new Uint8Array(QCOW2_V3_HEADER_LENGTH - QCOW2_V3_MIN_HEADER_LENGTH - 1),
    backingFilename: fields.backingFilename ?? null,
    backingFormat: fields.backingFormat ?? null,
    dataFile: null,
    cryptoHeader: null,
    featureNames: [],
    bitmaps: null,
    unknownExtensions: [],
  };
}

/** Reads and parses the header of the image in `file` (two reads: fixed fields, then the first cluster). */
export async function readQcow2Header(
  file: { size(): number; read(offset: number, buf: Uint8Array): Promise<void> },
  opts: ParseOptions = {},
): Promise<Qcow2Header> {
  const fileSize = file.size();
  const first = new Uint8Array(Math.min(fileSize, QCOW2_V3_MIN_HEADER_LENGTH));
  await file.read(0, first);
  if (first.length < 24) return parseQcow2Header(first, fileSize, opts);
  const clusterBits = new DataView(first.buffer).getUint32(20);
  if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) return parseQcow2Header(first, fileSize, opts);
  const cluster = new Uint8Array(Math.min(fileSize, 2 ** clusterBits));
  await file.read(0, cluster);
  return parseQcow2Header(cluster, fileSize, opts);
}
