/**
 * A read-only view of an internal snapshot's disk content (`img convert -l`,
 * `img measure -l`; QEMU's bdrv_snapshot_load_tmp).
 *
 * The view's L1 table is the snapshot's own (read once from the file when the
 * view opens); mapping and reading go through the image node's routines
 * (Qcow2Node.mapExtent/readAt with that table), so L2 entries mean exactly what
 * they mean in the active image and unallocated ranges read from the image's
 * backing node (zeroes without one or past its end). The view's size is the disk
 * size recorded in the snapshot. It changes nothing: writes are refused, and
 * closing it leaves the image open (its owner closes that).
 *
 * Snapshots are found as qemu-img finds them: by id and/or name (both must match
 * when both are given).
 */
import type { BlockExtent, BlockNode } from '../../node.js';
import { BlockRequestError, ImageFormatError, checkRange } from '../../node.js';
import { KIND_COMPRESSED, KIND_DATA, KIND_UNALLOCATED, KIND_ZERO, checkAligned, entryOffset } from './entries.js';
import type { L1Table, Qcow2Node } from './node.js';
import type { SnapshotEntry } from './snapshot-table.js';

export class Qcow2SnapshotView implements BlockNode {
  readonly driver = 'qcow2';
  readonly readOnly = true;
  readonly file: BlockNode;
  readonly backing: BlockNode | null;
  readonly granularity: number;
  private readonly table: L1Table;

  private constructor(private readonly node: Qcow2Node, private readonly snapshot: SnapshotEntry, l1: DataView) {
    this.file = node.file;
    this.backing = node.backing;
    this.granularity = node.granularity;
    this.table = {
      l2Offset: (index) => {
        if (index >= snapshot.l1Size) return 0;
        const offset = entryOffset(l1.getUint32(index * 8), l1.getUint32(index * 8 + 4));
        checkAligned(offset, node.clusterSize, `snapshot '${snapshot.name}' L1 entry ${index}`);
        return offset;
      },
      where: (index) => `${node.filename}: snapshot '${snapshot.name}' L2 table of L1 entry ${index},`,
    };
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

  async read(offset: number, buf: Uint8Array): Promise<void> {
    checkRange(this, this.size(), offset, buf.length);
    await this.node.readAt(offset, buf, this.table);
  }

  async blockStatus(offset: number, length: number): Promise<BlockExtent> {
    checkRange(this, this.size(), offset, length);
    const run = await this.node.mapExtent(offset, length, this.table);
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
