/**
 * `img check` for VMDK, as qemu-img 7.2 checks it: a grain-table entry of a sparse
 * extent that points at or past the end of its file is logged and ends the check
 * with an error (qemu-img reports "Check failed: Invalid argument" and exits 1);
 * otherwise the image is clean. Flat extents have nothing to check. The check only
 * reads; there is no repair.
 */
import type { ProtocolNode } from '../../protocols/protocol.js';
import type { CheckCounts } from '../qcow2/check.js';
import { VmdkNode } from './node.js';
import { SECTOR } from './sparse-header.js';

export async function checkVmdk(file: ProtocolNode, opts: { log: (line: string) => void }): Promise<CheckCounts> {
  const counts: CheckCounts = {
    checkErrors: 0, corruptions: 0, leaks: 0, corruptionsFixed: 0, leaksFixed: 0,
    imageEndOffset: 0, totalClusters: 0, allocatedClusters: 0, fragmentedClusters: 0, compressedClusters: 0,
  };
  const node = await VmdkNode.open(file, { readOnly: true });
  try {
    for (const extent of node.sparseExtents()) {
      for await (const { grain, entry } of extent.entries()) {
        if (entry === 1 && extent.zeroedGrainFlag) continue;
        if (entry * SECTOR >= extent.file.size()) {
          opts.log(`ERROR: grain ${grain} of ${extent.file.filename} points to sector ${entry}, past the end of the file`);
          throw new Error('Invalid argument');
        }
      }
    }
    return counts;
  } finally {
    // The caller owns `file`; only the extent files this open added are closed here.
    for (const extent of node.sparseExtents()) if (extent.file !== file) await extent.file.close();
  }
}
