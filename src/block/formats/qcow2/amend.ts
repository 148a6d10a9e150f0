/**
 * `amend` for qcow2: changes an existing image's compat level (0.10 <-> 1.1),
 * refcount width, lazy_refcounts, and size, with qemu-img 7.2's rules and
 * messages, working on the image file (the caller holds it exclusively).
 *
 * Options are validated before anything changes: creation-only options
 * (cluster_size, extended_l2, compression_type, preallocation, encryption) and
 * unknown ones are refused by name; backing_file/backing_fmt may only repeat
 * what the image records (qemu-img 7.2 refuses to amend them: rebase does it);
 * data-file and encryption options need features the image does not have.
 * Then, in QEMU's order: upgrade to v3 (header rewrite; snapshot entries
 * completed to v3 size), refcount width change (the whole refcount structure is
 * rewritten in the new width and switched to by one header write, see
 * snapshots.ts), lazy_refcounts on/off (off repairs a dirty image first),
 * downgrade to v2 last. A downgrade refuses refcount widths other than 16,
 * incompatible features (extended L2, external data file), zstd images that
 * hold compressed clusters and images with bitmaps; it turns zero clusters into
 * what v2 can express: unallocated (no backing file), or data clusters of
 * zeroes (preallocated ones in place; new ones allocated and counted first,
 * then pointed at). The size change is returned to the caller, which resizes
 * through the format driver (img resize's path).
 */
import { ImageFormatError } from '../../node.js';
import type { CreateOptionSpec } from '../format.js';
import { QCOW2_CREATE_OPTIONS } from './create-options.js';
import type { ProtocolNode } from '../../protocols/protocol.js';
import { parseBool, parseSize } from '../../options.js';
import {
  COMPAT_LAZY_REFCOUNTS,
  INCOMPAT_COMPRESSION,
  INCOMPAT_DIRTY,
  QCOW2_V3_HEADER_LENGTH,
  QCOW2_V3_MIN_HEADER_LENGTH,
  type Qcow2Header,
  clusterSizeOf,
  l2EntriesOf,
  readQcow2Header,
} from './header.js';
import { COPIED_HI, ZERO_LO } from './entries.js';
import { commitHeader, decodeL2Entry, readBytes, readL1Table, refcountMax, setL2EntryWord } from './check.js';
import {
  type ImageState,
  commitTransaction,
  copyRefs,
  openForChange,
  writeNewClusters,
  writeSnapshotTable,
} from './snapshots.js';
import { serializeSnapshotTable } from './snapshot-table.js';

/** Options only `create` takes (qemu-img: "This option is only supported for image creation"). */
const CREATE_ONLY = new Set([
  'cluster_size', 'extended_l2', 'compression_type', 'preallocation', 'encryption', 'encrypt.format',
  'encrypt.key-secret', 'encrypt.cipher-alg', 'encrypt.cipher-mode', 'encrypt.ivgen-alg', 'encrypt.ivgen-hash-alg',
  'encrypt.hash-alg', 'nocow',
]);
const AMENDABLE = new Set([
  'backing_file', 'backing_fmt', 'compat', 'data_file', 'data_file_raw', 'encrypt.iter-time', 'encrypt.keyslot', 'encrypt.new-secret',
  'encrypt.old-secret', 'encrypt.state', 'lazy_refcounts', 'refcount_bits', 'size',
]);

/** The `-o` options `img amend -o help` lists for qcow2: create's, as qemu-img describes them. */
export const QCOW2_AMEND_OPTIONS: readonly CreateOptionSpec[] = [
  'backing_file', 'backing_fmt', 'compat', 'lazy_refcounts', 'refcount_bits', 'size',
].map((name) => QCOW2_CREATE_OPTIONS.find((o) => o.name === name)!);

export interface Qcow2AmendRequest {
  version?: 2 | 3;
  refcountBits?: number;
  lazyRefcounts?: boolean;
  size?: number;
}

/** Validates `-o` options against the image (no changes yet); qemu-img's messages. */
export function parseQcow2AmendOptions(options: Map<string, string>, h: Qcow2Header): Qcow2AmendRequest {
  for (const key of options.keys()) {
    if (CREATE_ONLY.has(key)) throw new ImageFormatError(`Invalid parameter '${key}'\nThis option is only supported for image creation`);
    if (!AMENDABLE.has(key)) throw new ImageFormatError(`Invalid parameter '${key}'`);
  }
  const req: Qcow2AmendRequest = {};
  for (const [key, value] of options) {
    switch (key) {
      case 'compat':
        if (value === '0.10' || value === 'v2') req.version = 2;
        else if (value === '1.1' || value === 'v3') req.version = 3;
        else throw new ImageFormatError(`Unknown compatibility level ${value}`);
        break;
      case 'refcount_bits': {
        const bits = /^[0-9]+$/.test(value) ? Number(value) : NaN;
        if (!(bits > 0 && bits <= 64 && (bits & (bits - 1)) === 0)) {
          throw new ImageFormatError('Refcount width must be a power of two and may not exceed 64 bits');
        }
        req.refcountBits = bits;
        break;
      }
      case 'lazy_refcounts':
        req.lazyRefcounts = parseBool(value, 'lazy_refcounts');
        break;
      case 'size':
        req.size = parseSize(value, 'size');
        break;
      case 'backing_file':
      case 'backing_fmt': {
        const current = key === 'backing_file' ? h.backingFilename : h.backingFormat;
        if (value !== (current ?? '')) {
          throw new ImageFormatError("Cannot amend the backing file\nYou can use 'qemu-img rebase' instead.");
        }
        break;
      }
      case 'data_file':
        throw new ImageFormatError('data-file can only be set for images that use an external data file');
      case 'data_file_raw':
        throw new ImageFormatError('data-file-raw cannot be set on existing images');
      default:
        throw new ImageFormatError("Can't amend encryption options - encryption not present");
    }
  }
  return req;
}

/** Rewrites the refcount structure with entries of `bits` bits. */
async function changeRefcountWidth(s: ImageState, bits: number): Promise<Qcow2Header> {
  const order = Math.log2(bits);
  const max = refcountMax(order);
  const after = copyRefs(s.before);
  for (let c = 0; c < after.length; c++) {
    if (after.get(c) > max) {
      throw new ImageFormatError(
        `Cannot decrease refcount entry width to ${bits} bits: Cluster at offset 0x${(c * clusterSizeOf(s.h)).toString(16)} has a refcount of ${after.get(c)}`,
      );
    }
  }
  return commitTransaction(s, after, { ...s.h, refcountOrder: order });
}

async function upgrade(s: ImageState): Promise<Qcow2Header> {
  const h: Qcow2Header = {
    ...s.h,
    version: 3,
    incompatibleFeatures: 0n,
    compatibleFeatures: 0n,
    autoclearFeatures: 0n,
    refcountOrder: 4,
    headerLength: QCOW2_V3_HEADER_LENGTH,
    unknownHeaderFields: new Uint8Array(QCOW2_V3_HEADER_LENGTH - QCOW2_V3_MIN_HEADER_LENGTH - 1),
  };
  if (s.snapshots.length && serializeSnapshotTable(s.snapshots).length !== s.tableBytes) {
    // v3 entries must carry the disk size: the table grows and moves.
    const after = copyRefs(s.before);
    const table = await writeSnapshotTable(s, after, s.snapshots);
    return commitTransaction(s, after, { ...h, ...table });
  }
  await commitHeader(s.file, h);
  return h;
}

/** Whether any L2 table reachable from the active or a snapshot L1 holds a compressed cluster. */
async function hasCompressedClusters(s: ImageState): Promise<boolean> {
  for (const l1 of await allL1Tables(s)) {
    for (const e of l1) {
      if (!e.l2Offset) continue;
      const view = new DataView((await readBytes(s.file, e.l2Offset, clusterSizeOf(s.h))).buffer);
      for (let i = 0; i < l2EntriesOf(s.h); i++) if (decodeL2Entry(s.h, view, i).type === 'compressed') return true;
    }
  }
  return false;
}

async function allL1Tables(s: ImageState) {
  const tables = [await readL1Table(s.file, s.h.l1TableOffset, s.h.l1Size)];
  for (const sn of s.snapshots) tables.push(await readL1Table(s.file, sn.l1Offset, sn.l1Size));
  return tables;
}

/**
 * Turns zero clusters into v2 clusters. Entries are changed in place (each L2
 * table once, shared ones included); new zero-filled clusters for zero clusters
 * over a backing file are allocated and counted (refcount = the L2 table's) in
 * one committed transaction before any entry points at them.
 */
async function expandZeroClusters(s: ImageState): Promise<Qcow2Header> {
  const clusterSize = clusterSizeOf(s.h);
  const hasBacking = s.h.backingFilename !== null;
  const seen = new Set<number>();
  const pending: Array<{ l2Offset: number; index: number; l2Refcount: number }> = [];
  const zeroes = new Uint8Array(clusterSize);
  for (const l1 of await allL1Tables(s)) {
    for (const e of l1) {
      if (!e.l2Offset || seen.has(e.l2Offset)) continue;
      seen.add(e.l2Offset);
      const l2Refcount = s.before.get(Math.floor(e.l2Offset / clusterSize));
      const buf = await readBytes(s.file, e.l2Offset, clusterSize);
      const view = new DataView(buf.buffer);
      let dirty = false;
      for (let i = 0; i < l2EntriesOf(s.h); i++) {
        const d = decodeL2Entry(s.h, view, i);
        if (d.type === 'zero-alloc') {
          await s.file.write(d.offset, zeroes);
          const single = s.before.get(Math.floor(d.offset / clusterSize)) === 1;
          setL2EntryWord(s.h, view, i, single ? (d.hi | COPIED_HI) >>> 0 : d.hi & ~COPIED_HI, d.lo & ~ZERO_LO);
          dirty = true;
        } else if (d.type === 'zero-plain') {
          if (hasBacking) pending.push({ l2Offset: e.l2Offset, index: i, l2Refcount });
          else {
            setL2EntryWord(s.h, view, i, 0, 0);
            dirty = true;
          }
        }
      }
      if (dirty) await s.file.write(e.l2Offset, buf);
    }
  }
  if (pending.length === 0) return s.h;
  const after = copyRefs(s.before);
  const targets: number[] = [];
  for (const p of pending) {
    const offset = await writeNewClusters(s, after, zeroes);
    after.set(Math.floor(offset / clusterSize), p.l2Refcount);
    targets.push(offset);
  }
  const h = await commitTransaction(s, after, s.h);
  for (let k = 0; k < pending.length; k++) {
    const p = pending[k]!;
    const buf = await readBytes(s.file, p.l2Offset, clusterSize);
    const view = new DataView(buf.buffer);
    const off = targets[k]!;
    const hi = Math.floor(off / 2 ** 32);
    setL2EntryWord(s.h, view, p.index, p.l2Refcount === 1 ? (hi | COPIED_HI) >>> 0 : hi, off % 2 ** 32);
    await s.file.write(p.l2Offset, buf);
  }
  return h;
}

async function downgrade(s: ImageState): Promise<void> {
  if (s.h.refcountOrder !== 4) throw new ImageFormatError('compat=0.10 requires refcount_bits=16');
  const incompatible = s.h.incompatibleFeatures & ~(INCOMPAT_COMPRESSION | INCOMPAT_DIRTY);
  if (incompatible) {
    throw new ImageFormatError(`Cannot downgrade an image with incompatible features 0x${incompatible.toString(16)} set`);
  }
  if (s.h.bitmaps) throw new ImageFormatError('Cannot downgrade an image with persistent bitmaps');
  if (s.h.compressionType !== 'zlib' && (await hasCompressedClusters(s))) {
    throw new ImageFormatError('Cannot downgrade an image with zstd compression type and existing compressed clusters');
  }
  const h = await expandZeroClusters(s);
  await commitHeader(s.file, {
    ...h,
    version: 2,
    incompatibleFeatures: 0n,
    compatibleFeatures: 0n,
    autoclearFeatures: 0n,
    compressionType: 'zlib',
    featureNames: [],
    unknownHeaderFields: new Uint8Array(0),
  });
}

async function setLazyRefcounts(file: ProtocolNode, on: boolean): Promise<void> {
  const h = await readQcow2Header(file);
  const compatibleFeatures = on ? h.compatibleFeatures | COMPAT_LAZY_REFCOUNTS : h.compatibleFeatures & ~COMPAT_LAZY_REFCOUNTS;
  if (compatibleFeatures !== h.compatibleFeatures) await commitHeader(file, { ...h, compatibleFeatures });
}

/**
 * Amends the image in `file` (opened read-write). Returns the new virtual size
 * when `size` asks for a change the caller must make through the driver.
 */
export async function amendQcow2(file: ProtocolNode, options: Map<string, string>): Promise<number | null> {
  const h0 = await readQcow2Header(file);
  const req = parseQcow2AmendOptions(options, h0);
  const oldVersion = h0.version;
  const newVersion = req.version ?? oldVersion;
  if (req.refcountBits !== undefined && req.refcountBits !== 16 && newVersion < 3) {
    throw new ImageFormatError('Refcount widths other than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)');
  }
  if (req.lazyRefcounts && newVersion < 3) {
    throw new ImageFormatError('Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)');
  }
  // Each step starts from the image as the previous one left it; openForChange
  // also repairs a dirty image first, as QEMU does when it opens one read-write.
  const state = await openForChange(file);
  if (newVersion > oldVersion) await upgrade(state);
  if (req.refcountBits !== undefined) {
    const st = await openForChange(file);
    if (req.refcountBits !== 2 ** st.h.refcountOrder) await changeRefcountWidth(st, req.refcountBits);
  }
  if (req.lazyRefcounts !== undefined && newVersion >= 3) await setLazyRefcounts(file, req.lazyRefcounts);
  if (newVersion < oldVersion) await downgrade(await openForChange(file));
  await file.flush();
  return req.size !== undefined && req.size !== h0.size ? req.size : null;
}
