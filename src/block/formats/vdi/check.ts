/**
 * `img check` for VDI, counting what qemu-img 7.2 counts: every stored block-map
 * entry must point inside the data area's blocks and to a block no other entry
 * uses, and the header's allocated count must equal the number of stored entries.
 * Each finding is one corruption (VDI has no reference counts, so no leaks). The
 * check only reads; there is no repair.
 */
import type { ProtocolNode } from '../../protocols/protocol.js';
import type { CheckCounts } from '../qcow2/check.js';
import { VDI_UNALLOCATED, VDI_ZERO } from './header.js';
import { VdiNode } from './node.js';

export async function checkVdi(file: ProtocolNode, opts: { log: (line: string) => void }): Promise<CheckCounts> {
  const counts: CheckCounts = {
    checkErrors: 0, corruptions: 0, leaks: 0, corruptionsFixed: 0, leaksFixed: 0,
    imageEndOffset: 0, totalClusters: 0, allocatedClusters: 0, fragmentedClusters: 0, compressedClusters: 0,
  };
  const node = await VdiNode.open(file, { readOnly: true });
  const bmap = node.blockMap();
  const blocks = node.vdiHeader.blocksInImage;
  const owner = new Int32Array(blocks).fill(-1);
  let stored = 0;
  for (let block = 0; block < bmap.length; block++) {
    const entry = bmap[block]!;
    if (entry === VDI_UNALLOCATED || entry === VDI_ZERO) continue;
    stored++;
    if (entry >= blocks) {
      opts.log(`ERROR: block ${block} points to data block ${entry}, past the ${blocks} blocks of the image`);
      counts.corruptions++;
    } else if (owner[entry]! >= 0) {
      opts.log(`ERROR: data block ${entry} is used by blocks ${owner[entry]} and ${block}`);
      counts.corruptions++;
    } else {
      owner[entry] = block;
    }
  }
  if (stored !== node.vdiHeader.blocksAllocated) {
    opts.log(`ERROR: the header counts ${node.vdiHeader.blocksAllocated} allocated blocks, the block map ${stored}`);
    counts.corruptions++;
  }
  return counts;
}
