/**
 * A read-only view of an internal snapshot's disk content (`img convert -l`,
 * `img measure -l`; QEMU's bdrv_snapshot_load_tmp).
 *
 * The view maps guest offsets through the snapshot's own L1 table (read once
 * from the file when the view opens) and the L2 tables it names, read through
 * the image's L2 cache: an L2 entry is data (read from its host cluster), zero,
 * compressed (decompressed a cluster at a time) or unallocated (read from the
 * image's backing node as the snapshot sees it, zeroes without one or past its
 * end); extended L2 images map by subcluster. The view's size is the disk size
 * recorded in the snapshot. It changes nothing: writes are refused, and closing
 * it leaves the image open (its owner closes that).
 *
 * Snapshots are found as qemu-img finds them: by id and/or name (both must match
 * when both are given).
 */
import type { BlockExtent, BlockNode } from '../../node.js';
import { BlockRequestError, ImageFormatError, checkRange } from '../../node.js';
import { decompressCluster } from '../../compress/index.js';
import {
  type ClusterKind,
  type CompressedDescriptor,
  KIND_COMPRESSED,
  KIND_DATA,
  KIND_UNALLOCATED,
  KIND_ZERO,
  checkAligned,
  entryOffset,
  readL2Entry,
  subclusterKind,
} from './entries.js';
import type { Qcow2Node } from './node.js';
import type { SnapshotEntry } from './snapshot-table.js';

/** One run of guest bytes that map the same way. */
interface Run {
  kind: ClusterKind;
  length: number;
  hostOffset: number | null;
  compressed: CompressedDescriptor | null;
}

export class Qcow2SnapshotView implements BlockNode {
  readonly driver = 'qcow2';
  readonly readOnly = true;
  readonly file: BlockNode;
  readonly backing: BlockNode | null;
  readonly granularity: number;
  private decompressed: { hostOffset: number; data: Uint8Array } | null = null;

  private constructor(private readonly node: Qcow2Node, private readonly snapshot: SnapshotEntry, private readonly l1: DataView) {
    this.file = node.file;
    this.backing = node.backing;
    this.granularity = node.granularity;
  }

  /** Opens the snapshot that `which` names; qemu-img's "Can't find snapshot" when none does. */
  static async open(node: Qcow2Node, which: { id?: string; name?: string }): Promise<Qcow2SnapshotView> {
    const snapshot = node.snapshots.find(
      (s) => (which.id === undefined || s.id === which.id) && (which.name === undefined || s.name === which.name),
    );
    if (!snapshot || (which.id === undefined && which.name === undefined)) {
      throw new ImageFormatError("Failed to load snapshot: Can't find snapshot");
    }
    const bytes = new Uint8Array(snapshot.l1Size * 8);
    await node.file.read(snapshot.l1Offset, bytes).catch((e: Error) => {
      throw new ImageFormatError(`${node.filename}: cannot read the L1 table of snapshot '${snapshot.name}': ${e.message}`);
    });
    return new Qcow2SnapshotView(node, snapshot, new DataView(bytes.buffer));
  }

  get filename(): string {
    return this.node.filename;
  }

  size(): number {
    return this.snapshot.diskSize;
  }

  private l2Offset(l1Index: number): number {
    if (l1Index >= this.snapshot.l1Size) return 0;
    const offset = entryOffset(this.l1.getUint32(l1Index * 8), this.l1.getUint32(l1Index * 8 + 4));
    checkAligned(offset, this.node.clusterSize, `snapshot '${this.snapshot.name}' L1 entry ${l1Index}`);
    return offset;
  }

  /** The run at guest `offset`: at most `maxLength` bytes, within one L2 table's reach. */
  private async mapRun(offset: number, maxLength: number): Promise<Run> {
    const cs = this.node.clusterSize;
    const perTable = this.node.l2Entries;
    const l1Index = Math.floor(offset / (cs * perTable));
    const end = Math.min(offset + maxLength, (l1Index + 1) * cs * perTable);
    const l2 = this.l2Offset(l1Index);
    if (l2 === 0) return { kind: KIND_UNALLOCATED, length: end - offset, hostOffset: null, compressed: null };
    const table = await this.node.l2Table(l2);
    const where = `${this.filename}: snapshot '${this.snapshot.name}' L2 table of L1 entry ${l1Index},`;
    const g = this.node.geometry;
    let run: Run | null = null;
    let nextHost: number | null = null;
    for (let pos = offset; pos < end; ) {
      const e = readL2Entry(table.view, Math.floor(pos / cs) % perTable, g, where);
      const intra = pos % cs;
      const unit = e.kind === KIND_COMPRESSED || !g.extendedL2 ? cs : this.node.subclusterSize;
      const kind = unit === cs ? e.kind : subclusterKind(e, Math.floor(intra / unit));
      const host = kind === KIND_DATA ? e.hostOffset + intra : null;
      const stop = Math.min(pos - (intra % unit) + unit, end);
      if (run === null) {
        run = { kind, length: 0, hostOffset: host, compressed: e.compressed };
        if (kind === KIND_COMPRESSED) return { ...run, length: stop - offset };
      } else if (kind !== run.kind || host !== nextHost) {
        break;
      }
      run.length = stop - offset;
      nextHost = host === null ? null : host + (stop - pos);
      pos = stop;
    }
    return run!;
  }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    checkRange(this, this.size(), offset, buf.length);
    for (let pos = 0; pos < buf.length; ) {
      const run = await this.mapRun(offset + pos, buf.length - pos);
      const part = buf.subarray(pos, pos + run.length);
      if (run.kind === KIND_DATA) await this.node.file.read(run.hostOffset!, part);
      else if (run.kind === KIND_ZERO) part.fill(0);
      else if (run.kind === KIND_UNALLOCATED) await this.readBacking(offset + pos, part);
      else await this.readCompressed(run.compressed!, (offset + pos) % this.node.clusterSize, part);
      pos += run.length;
    }
  }

  private async readBacking(offset: number, part: Uint8Array): Promise<void> {
    const n = this.backing ? Math.max(0, Math.min(part.length, this.backing.size() - offset)) : 0;
    if (n > 0) await this.backing!.read(offset, part.subarray(0, n));
    part.fill(0, n);
  }

  private async readCompressed(desc: CompressedDescriptor, intra: number, part: Uint8Array): Promise<void> {
    if (this.decompressed?.hostOffset !== desc.hostOffset) {
      const src = new Uint8Array(desc.length);
      const avail = Math.max(0, Math.min(src.length, this.node.file.size() - desc.hostOffset));
      await this.node.file.read(desc.hostOffset, src.subarray(0, avail));
      const data = new Uint8Array(this.node.clusterSize);
      await decompressCluster(this.node.header.compressionType, src, data).catch((e: Error) => {
        throw new ImageFormatError(
          `${this.filename}: compressed cluster at host offset 0x${desc.hostOffset.toString(16)} is corrupt: ${e.message}`,
        );
      });
      this.decompressed = { hostOffset: desc.hostOffset, data };
    }
    part.set(this.decompressed.data.subarray(intra, intra + part.length));
  }

  async blockStatus(offset: number, length: number): Promise<BlockExtent> {
    checkRange(this, this.size(), offset, length);
    const run = await this.mapRun(offset, length);
    return {
      offset,
      length: run.length,
      allocated: run.kind !== KIND_UNALLOCATED,
      data: run.kind === KIND_DATA || run.kind === KIND_COMPRESSED,
      zero: run.kind === KIND_ZERO,
      compressed: run.kind === KIND_COMPRESSED,
      hostOffset: run.hostOffset,
    };
  }

  private refuse(): Promise<never> {
    return Promise.reject(new BlockRequestError(`${this.filename}: snapshot '${this.snapshot.name}' is opened read-only`));
  }

  write(): Promise<void> {
    return this.refuse();
  }

  writeZeroes(): Promise<void> {
    return this.refuse();
  }

  discard(): Promise<void> {
    return this.refuse();
  }

  truncate(): Promise<void> {
    return this.refuse();
  }

  async flush(): Promise<void> {}

  allocatedSize(): Promise<number> {
    return this.node.allocatedSize();
  }

  /** The view owns nothing: the image it reads stays open. */
  async close(): Promise<void> {}
}
