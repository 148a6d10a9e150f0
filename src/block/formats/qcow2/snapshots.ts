/**
 * qcow2 internal snapshots: list, create, apply (goto) and delete, working on
 * the image file directly (the caller holds the image open exclusively).
 *
 * Each change is a transaction committed by one header write:
 *   1. the stored refcounts R0 are read; the new refcounts R are R0 plus the
 *      change (create: +1 on every L2 table and data cluster of the active
 *      tree; apply: +1 on the snapshot's tree, -1 on the active one; delete:
 *      -1 on the snapshot's tree) and minus the tables the change replaces;
 *   2. new tables (L1 copy, snapshot table) and a complete new refcount
 *      structure for R go to clusters that are free in both R0 and R, so
 *      nothing the old header reaches is overwritten;
 *   3. OFLAG_COPIED bits that must go (refcount becomes > 1) are cleared in the
 *      active tables before the commit — clearing is safe in either state;
 *   4. the header (L1, snapshot table, refcount table, sizes) is written in one
 *      sector-sized write and flushed: before it the old image is intact, after
 *      it the new one is complete (a crash leaves at most unreferenced clusters);
 *   5. after delete, COPIED bits that may now be set (refcount back to 1) are set.
 * A refcount that would exceed refcount_bits is refused before anything is
 * written (QEMU fails there with EINVAL and a leaked cluster). A dirty image
 * (lazy refcounts) is repaired first; an image marked corrupt is refused.
 * The transaction steps (openForChange, copyRefs, writeNewClusters,
 * writeSnapshotTable, commitTransaction, fixCopiedFlags) are exported for the
 * other whole-image changes (amend).
 */
import { ImageFormatError } from '../../node.js';
import type { ProtocolNode } from '../../protocols/protocol.js';
import type { SnapshotInfo } from '../format.js';
import {
  INCOMPAT_CORRUPT,
  INCOMPAT_DIRTY,
  type Qcow2Header,
  clusterSizeOf,
  l1EntriesFor,
  hasExtendedL2,
  l2EntriesOf,
  readQcow2Header,
} from './header.js';
import { COPIED_HI } from './entries.js';
import {
  type L1Entry,
  ReferenceCounts,
  StoredRefcounts,
  decodeL2Entry,
  encodeL1Table,
  installRefcounts,
  loadStoredRefcounts,
  readBytes,
  readL1Table,
  refcountMax,
  releaseRange,
  allocateRun,
  repairDirtyQcow2,
  setL2EntryWord,
} from './check.js';
import {
  type SnapshotEntry,
  findSnapshot,
  nextSnapshotId,
  readSnapshotTable,
  serializeSnapshotTable,
  snapshotInfo,
} from './snapshot-table.js';

/** The image state one transaction starts from. */
export interface ImageState {
  file: ProtocolNode;
  h: Qcow2Header;
  stored: StoredRefcounts;
  /** R0: refcounts as stored. */
  before: ReferenceCounts;
  snapshots: SnapshotEntry[];
  tableBytes: number;
}

async function loadState(file: ProtocolNode, h: Qcow2Header): Promise<ImageState> {
  const stored = await StoredRefcounts.load(file, h);
  const before = await loadStoredRefcounts(file, h, stored);
  const t = h.nbSnapshots
    ? await readSnapshotTable((o, n) => readBytes(file, o, n), h.snapshotsOffset, h.nbSnapshots, {
      version: h.version, virtualSize: h.size,
    })
    : { entries: [], byteLength: 0 };
  return { file, h, stored, before, snapshots: t.entries, tableBytes: t.byteLength };
}

/** Reads the header, refusing corrupt images and repairing dirty ones first. */
export async function openForChange(file: ProtocolNode): Promise<ImageState> {
  let h = await readQcow2Header(file);
  if (h.incompatibleFeatures & INCOMPAT_CORRUPT) {
    throw new ImageFormatError('the image is marked corrupt; repair it with img check -r all first');
  }
  if (h.incompatibleFeatures & INCOMPAT_DIRTY) {
    await repairDirtyQcow2(file);
    h = await readQcow2Header(file);
  }
  return loadState(file, h);
}

/** Calls `visit(offset, bytes)` for every L2 table and data cluster an L1 table reaches. */
export async function forEachTreeCluster(
  file: ProtocolNode,
  h: Qcow2Header,
  l1: readonly L1Entry[],
  visit: (offset: number, bytes: number) => void,
): Promise<void> {
  const clusterSize = clusterSizeOf(h);
  for (const e of l1) {
    if (!e.l2Offset) continue;
    visit(e.l2Offset, clusterSize);
    const view = new DataView((await readBytes(file, e.l2Offset, clusterSize)).buffer);
    for (let i = 0; i < l2EntriesOf(h); i++) {
      const d = decodeL2Entry(h, view, i);
      if (d.type === 'normal' || d.type === 'zero-alloc') visit(d.offset, clusterSize);
      else if (d.type === 'compressed') visit(d.offset, d.compressedBytes);
    }
  }
}

function addTree(refs: ReferenceCounts, h: Qcow2Header, offset: number, bytes: number, delta: 1 | -1): void {
  if (delta < 0) {
    releaseRange(refs, h, offset, bytes);
    return;
  }
  const max = refcountMax(h.refcountOrder);
  const first = Math.floor(offset / clusterSizeOf(h));
  const last = Math.floor((offset + bytes - 1) / clusterSizeOf(h));
  for (let c = first; c <= last; c++) {
    const v = refs.get(c) + 1;
    if (v > max) {
      throw new ImageFormatError(
        `refcount overflow: cluster ${c} would need a refcount of ${v}, more than refcount_bits=${2 ** h.refcountOrder} ` +
        'can hold (raise it with img amend -o refcount_bits=16)',
      );
    }
    refs.set(c, v);
  }
}

export function copyRefs(r: ReferenceCounts): ReferenceCounts {
  const out = new ReferenceCounts(r.length, Number.MAX_SAFE_INTEGER);
  for (let c = 0; c < r.length; c++) out.set(c, r.get(c));
  return out;
}

/** Allocates and writes `data` (padded to clusters) where both R0 and R are free; counts it in R. */
export async function writeNewClusters(s: ImageState, after: ReferenceCounts, data: Uint8Array): Promise<number> {
  const clusterSize = clusterSizeOf(s.h);
  const clusters = Math.max(1, Math.ceil(data.length / clusterSize));
  const first = allocateRun((c) => s.before.get(c) === 0 && after.get(c) === 0, clusters);
  const padded = new Uint8Array(clusters * clusterSize);
  padded.set(data);
  await s.file.writeGrow(first * clusterSize, padded);
  for (let c = first; c < first + clusters; c++) after.set(c, after.get(c) + 1);
  return first * clusterSize;
}

/** Frees the old refcount structure in R (the new one replaces it). */
function releaseRefcountStructure(s: ImageState, after: ReferenceCounts): void {
  const clusterSize = clusterSizeOf(s.h);
  releaseRange(after, s.h, s.h.refcountTableOffset, s.h.refcountTableClusters * clusterSize);
  for (let i = 0; i < s.stored.table.length; i++) releaseRange(after, s.h, s.stored.blockOffset(i), clusterSize);
}

/**
 * Rewrites the COPIED bits of the active tree: a bit stays only where `refs`
 * says 1; with `allowSet`, missing bits are set where it says 1.
 */
export async function fixCopiedFlags(file: ProtocolNode, h: Qcow2Header, refs: ReferenceCounts, allowSet: boolean): Promise<void> {
  const clusterSize = clusterSizeOf(h);
  const l1 = await readL1Table(file, h.l1TableOffset, h.l1Size);
  let l1Dirty = false;
  for (const e of l1) {
    if (!e.l2Offset) continue;
    const one = refs.get(Math.floor(e.l2Offset / clusterSize)) === 1;
    const hi = one && allowSet ? (e.hi | COPIED_HI) >>> 0 : one ? e.hi : e.hi & ~COPIED_HI;
    if (hi !== e.hi) {
      e.hi = hi;
      l1Dirty = true;
    }
    const buf = await readBytes(file, e.l2Offset, clusterSize);
    const view = new DataView(buf.buffer);
    let dirty = false;
    for (let i = 0; i < l2EntriesOf(h); i++) {
      const d = decodeL2Entry(h, view, i);
      if (d.type !== 'normal' && d.type !== 'zero-alloc') continue;
      const dataOne = refs.get(Math.floor(d.offset / clusterSize)) === 1;
      const dhi = dataOne && allowSet ? (d.hi | COPIED_HI) >>> 0 : dataOne ? d.hi : d.hi & ~COPIED_HI;
      if (dhi !== d.hi) {
        setL2EntryWord(h, view, i, dhi, d.lo);
        dirty = true;
      }
    }
    if (dirty) await file.write(e.l2Offset, buf);
  }
  if (l1Dirty) await file.write(h.l1TableOffset, encodeL1Table(l1));
}

/** Writes the snapshot table for `entries` (or none) into R; returns offset and count for the header. */
export async function writeSnapshotTable(
  s: ImageState,
  after: ReferenceCounts,
  entries: SnapshotEntry[],
): Promise<{ snapshotsOffset: number; nbSnapshots: number }> {
  releaseRange(after, s.h, s.h.snapshotsOffset, s.tableBytes);
  if (entries.length === 0) return { snapshotsOffset: 0, nbSnapshots: 0 };
  const offset = await writeNewClusters(s, after, serializeSnapshotTable(entries));
  return { snapshotsOffset: offset, nbSnapshots: entries.length };
}

/** Writes R as the refcount structure (in `h`'s refcount width) and commits `h`. */
export async function commitTransaction(s: ImageState, after: ReferenceCounts, h: Qcow2Header): Promise<Qcow2Header> {
  releaseRefcountStructure(s, after);
  return installRefcounts(s.file, h, after, (c) => s.before.get(c) === 0);
}

/** The snapshots of the image in `file` as qemu-img reports them. */
export async function listQcow2Snapshots(file: ProtocolNode, h?: Qcow2Header): Promise<SnapshotInfo[]> {
  const header = h ?? (await readQcow2Header(file));
  if (header.nbSnapshots === 0) return [];
  const t = await readSnapshotTable((o, n) => readBytes(file, o, n), header.snapshotsOffset, header.nbSnapshots, {
    version: header.version, virtualSize: header.size,
  });
  return t.entries.map(snapshotInfo);
}

export interface CreateSnapshotOptions {
  /** Snapshot time (default: now). */
  date?: Date;
}

/** Creates snapshot `name` of the active state (qemu-img snapshot -c). */
export async function createQcow2Snapshot(file: ProtocolNode, name: string, opts: CreateSnapshotOptions = {}): Promise<void> {
  const s = await openForChange(file);
  const { h } = s;
  if (Buffer.byteLength(name) > 0xffff) throw new ImageFormatError('the snapshot name is too long');
  const after = copyRefs(s.before);
  const l1 = await readL1Table(file, h.l1TableOffset, h.l1Size);
  const touched: Array<[number, number]> = [];
  await forEachTreeCluster(file, h, l1, (o, n) => touched.push([o, n]));
  for (const [o, n] of touched) addTree(after, h, o, n, 1);

  const copy = l1.map((e) => ({ ...e, hi: e.hi & ~COPIED_HI }));
  const l1Offset = h.l1Size ? await writeNewClusters(s, after, encodeL1Table(copy)) : 0;
  const now = opts.date ?? new Date();
  const ms = now.getTime();
  const entry: SnapshotEntry = {
    l1Offset,
    l1Size: h.l1Size,
    id: nextSnapshotId(s.snapshots),
    name,
    dateSec: Math.floor(ms / 1000),
    dateNsec: (ms % 1000) * 1_000_000,
    vmClockNsec: 0n,
    vmStateSize: 0,
    diskSize: h.size,
    icount: 0n,
    unknownExtra: new Uint8Array(0),
  };
  const table = await writeSnapshotTable(s, after, [...s.snapshots, entry]);
  await fixCopiedFlags(file, h, after, false);
  await commitTransaction(s, after, { ...h, ...table });
}

function findOrThrow(s: ImageState, idOrName: string, message: string): number {
  const i = findSnapshot(s.snapshots, idOrName);
  if (i < 0) throw new SnapshotNotFoundError(message);
  return i;
}

/** A snapshot name or ID that matches nothing. */
export class SnapshotNotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SnapshotNotFoundError';
  }
}

/** Makes snapshot `idOrName` the active state (qemu-img snapshot -a). */
export async function applyQcow2Snapshot(file: ProtocolNode, idOrName: string): Promise<void> {
  const s = await openForChange(file);
  const { h } = s;
  const sn = s.snapshots[findOrThrow(s, idOrName, 'Failed to load snapshot: No such file or directory')]!;
  const clusterSize = clusterSizeOf(h);
  if (sn.l1Offset % clusterSize !== 0) throw new ImageFormatError(`snapshot ${sn.id} has an unaligned L1 table`);
  const needed = l1EntriesFor(sn.diskSize, h.clusterBits, hasExtendedL2(h));
  const snL1 = await readL1Table(file, sn.l1Offset, sn.l1Size);
  const activeL1 = await readL1Table(file, h.l1TableOffset, h.l1Size);

  const after = copyRefs(s.before);
  const inc: Array<[number, number]> = [];
  const dec: Array<[number, number]> = [];
  await forEachTreeCluster(file, h, snL1, (o, n) => inc.push([o, n]));
  await forEachTreeCluster(file, h, activeL1, (o, n) => dec.push([o, n]));
  for (const [o, n] of inc) addTree(after, h, o, n, 1);
  for (const [o, n] of dec) addTree(after, h, o, n, -1);
  releaseRange(after, h, h.l1TableOffset, h.l1Size * 8);

  const l1Size = Math.max(sn.l1Size, needed);
  const entries: L1Entry[] = [];
  for (let i = 0; i < l1Size; i++) {
    const e = snL1[i] ?? { hi: 0, lo: 0, l2Offset: 0 };
    const one = e.l2Offset !== 0 && after.get(Math.floor(e.l2Offset / clusterSize)) === 1;
    entries.push({ ...e, hi: one ? (e.hi | COPIED_HI) >>> 0 : e.hi & ~COPIED_HI });
  }
  const l1Offset = l1Size ? await writeNewClusters(s, after, encodeL1Table(entries)) : 0;
  const newH: Qcow2Header = { ...h, l1TableOffset: l1Offset, l1Size, size: sn.diskSize };
  // The new active tree's L2 entries get COPIED bits that match R (clearing only: every
  // cluster is shared with the snapshot now).
  await fixCopiedFlags(file, { ...newH }, after, false);
  const table = await writeSnapshotTable(s, after, s.snapshots);
  await commitTransaction(s, after, { ...newH, ...table });
}

/** Deletes snapshot `idOrName` (qemu-img snapshot -d). */
export async function deleteQcow2Snapshot(file: ProtocolNode, idOrName: string): Promise<void> {
  const s = await openForChange(file);
  const { h } = s;
  const index = findOrThrow(s, idOrName, 'snapshot not found');
  const sn = s.snapshots[index]!;
  const after = copyRefs(s.before);
  const snL1 = await readL1Table(file, sn.l1Offset, sn.l1Size);
  const dec: Array<[number, number]> = [];
  await forEachTreeCluster(file, h, snL1, (o, n) => dec.push([o, n]));
  for (const [o, n] of dec) addTree(after, h, o, n, -1);
  releaseRange(after, h, sn.l1Offset, sn.l1Size * 8);
  const table = await writeSnapshotTable(s, after, s.snapshots.filter((_, i) => i !== index));
  const committed = await commitTransaction(s, after, { ...h, ...table });
  await fixCopiedFlags(file, committed, after, true);
  await file.flush();
}

