/**
 * Emptying a qcow2 image so that it defers entirely to its backing file (what
 * `img commit` does to the overlay it committed; QEMU's qcow2 make_empty).
 *
 * Every L2 table the active L1 table reaches is dropped as a whole: its L1 entry
 * becomes 0 (written at once), and the references it held (the L2 table itself
 * and every data or compressed cluster its entries name, preallocated zero
 * clusters included) are queued to be freed. A table shared with an internal
 * snapshot loses only the active image's references, so the snapshot keeps its
 * clusters. The frees are applied by flushMetadata(), after the L1 change is on
 * disk: a crash in between leaks clusters, never frees one still referenced.
 * The result reads every guest cluster as unallocated, as after QEMU's full
 * discard (no zero flags are left behind).
 */
import { KIND_COMPRESSED, readL2Entry } from './entries.js';
import type { Qcow2Node } from './node.js';

export async function makeQcow2Empty(node: Qcow2Node): Promise<void> {
  await node.exclusive(async () => {
    for (let l1Index = 0; l1Index < node.header.l1Size; l1Index++) {
      const { offset } = node.l1Entry(l1Index);
      if (offset === 0) continue;
      const table = await node.l2Table(offset);
      const where = `L2 table at 0x${offset.toString(16)}`;
      for (let i = 0; i < node.l2Entries; i++) {
        const e = readL2Entry(table.view, i, node.geometry, where);
        if (e.kind === KIND_COMPRESSED) node.refcounts.queueFree(e.compressed!.hostOffset, e.compressed!.length);
        else if (e.hostOffset !== 0) node.refcounts.queueFree(e.hostOffset, node.clusterSize);
      }
      await node.setL1Entry(l1Index, 0, false);
      node.refcounts.queueFree(offset, node.clusterSize);
    }
    await node.flushMetadata();
  });
}
