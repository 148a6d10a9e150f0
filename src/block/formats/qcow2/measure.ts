/**
 * qcow2's answer to `img measure`: how many host bytes a new qcow2 image takes,
 * counted the way qemu-img 7.2 counts them so both tools print the same numbers.
 *
 * "fully allocated" is a preallocated image: one header cluster, every L2 table the
 * virtual size needs (entries rounded up to whole tables), the L1 table rounded up
 * to whole clusters, the refcount table and refcount blocks that count all of that
 * plus themselves (a fixed point: blocks count clusters including the blocks and
 * table clusters), and the data clusters. "required" keeps that metadata but only
 * the data clusters the source fills: every cluster a data run of the source
 * touches (the whole virtual size with preallocation=falloc/full, or when a
 * backing file is named, since the new image may share nothing with it). Bitmaps
 * are sized when the source can carry them and the target is version 3: each
 * bitmap's clusters, its bitmap table, and one directory entry rounded to 8 bytes.
 */
import type { MeasureBitmap, MeasureRequest, MeasureResult } from '../format.js';
import { parseBool, parseSize } from '../../options.js';

/** The qcow2 creation settings that determine its size. */
export interface Qcow2Geometry {
  clusterSize: number;
  version: 2 | 3;
  refcountBits: number;
  extendedL2: boolean;
  preallocation: 'off' | 'metadata' | 'falloc' | 'full';
  hasBacking: boolean;
}

const MAX_L1_BYTES = 32 * 2 ** 20;
const MIN_EXTENDED_L2_CLUSTER = 16384;

/** Reads the size-relevant `-o` options, with qemu-img's errors for bad values. */
export function qcow2GeometryFromOptions(options: Map<string, string>): Qcow2Geometry {
  const extendedL2 = options.has('extended_l2') ? parseBool(options.get('extended_l2')!, 'extended_l2') : false;
  const clusterSize = options.has('cluster_size') ? parseSize(options.get('cluster_size')!, 'cluster_size') : 65536;
  if (clusterSize < 512 || clusterSize > 2 * 2 ** 20 || (clusterSize & (clusterSize - 1)) !== 0) {
    throw new Error('Cluster size must be a power of two between 512 and 2048k');
  }
  if (extendedL2 && clusterSize < MIN_EXTENDED_L2_CLUSTER) {
    throw new Error(`Extended L2 entries are only supported with cluster sizes of at least ${MIN_EXTENDED_L2_CLUSTER} bytes`);
  }
  const compat = options.get('compat');
  let version: 2 | 3 = 3;
  if (compat === '0.10' || compat === 'v2') version = 2;
  else if (compat !== undefined && compat !== '1.1' && compat !== 'v3') {
    throw new Error(`Invalid compatibility level: '${compat}'`);
  }
  const refcountText = options.get('refcount_bits') ?? '16';
  const refcountBits = /^[0-9]+$/.test(refcountText) ? Number(refcountText) : NaN;
  if (!(refcountBits >= 1 && refcountBits <= 64 && (refcountBits & (refcountBits - 1)) === 0)) {
    throw new Error('Refcount width must be a power of two and may not exceed 64 bits');
  }
  if (version < 3 && refcountBits !== 16) {
    throw new Error(
      'Different refcount widths than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)',
    );
  }
  const preallocation = options.get('preallocation') ?? 'off';
  if (preallocation !== 'off' && preallocation !== 'metadata' && preallocation !== 'falloc' && preallocation !== 'full') {
    throw new Error(`invalid parameter value: ${preallocation}`);
  }
  return { clusterSize, version, refcountBits, extendedL2, preallocation, hasBacking: options.has('backing_file') };
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/**
 * Bytes of refcount table and refcount blocks needed to count `clusters` clusters
 * plus the refcount structures themselves.
 */
export function refcountMetadataBytes(clusters: number, clusterSize: number, refcountBits: number): number {
  const perBlock = (clusterSize * 8) / refcountBits;
  const blocksPerTableCluster = clusterSize / 8;
  let blocks = 0;
  let table = 0;
  for (;;) {
    const nextBlocks = Math.ceil((clusters + blocks + table) / perBlock);
    const nextTable = Math.ceil(nextBlocks / blocksPerTableCluster);
    if (nextBlocks === blocks && nextTable === table) break;
    blocks = nextBlocks;
    table = nextTable;
  }
  return (blocks + table) * clusterSize;
}

/** Host bytes of a fully preallocated image of `virtualSize` bytes (metadata + data). */
export function qcow2FullyAllocatedSize(virtualSize: number, g: Qcow2Geometry): number {
  const cs = g.clusterSize;
  const entryBytes = g.extendedL2 ? 16 : 8;
  const data = roundUp(virtualSize, cs);
  const l2Entries = roundUp(data / cs, cs / entryBytes);
  const l1Entries = roundUp((l2Entries * entryBytes) / cs, cs / 8);
  const meta = cs + l2Entries * entryBytes + l1Entries * 8;
  return meta + refcountMetadataBytes((meta + data) / cs, cs, g.refcountBits) + data;
}

/** Space the source's persistent bitmaps take in a qcow2 image of this cluster size. */
export function qcow2BitmapsSize(bitmaps: readonly MeasureBitmap[], virtualSize: number, clusterSize: number): number {
  let total = 0;
  let directory = 0;
  for (const b of bitmaps) {
    const bytes = Math.ceil(Math.ceil(virtualSize / b.granularity) / 8);
    const clusters = Math.ceil(bytes / clusterSize);
    total += clusters * clusterSize + roundUp(clusters * 8, clusterSize);
    directory += roundUp(24 + Buffer.byteLength(b.name), 8);
  }
  return total + roundUp(directory, clusterSize);
}

export async function measureQcow2(req: MeasureRequest): Promise<MeasureResult> {
  const g = qcow2GeometryFromOptions(req.options);
  const cs = g.clusterSize;
  const virtualSize = roundUp(req.size, cs);
  const l2Tables = Math.ceil(virtualSize / cs / (cs / (g.extendedL2 ? 16 : 8)));
  if (!req.source && l2Tables * 8 > MAX_L1_BYTES) {
    throw new Error('The image size is too large (try using a larger cluster size)');
  }
  let data = 0;
  if (g.preallocation === 'falloc' || g.preallocation === 'full' || (req.source && g.hasBacking)) {
    data = virtualSize;
  } else if (req.source) {
    // Every cluster a data run touches is needed; a run ending mid-cluster claims the
    // rest of that cluster, so counting resumes at the next cluster boundary.
    let countedTo = 0;
    for await (const e of req.source.extents()) {
      const end = e.offset + e.length;
      if (!e.data || end <= countedTo) continue;
      const from = Math.max(e.offset, countedTo);
      countedTo = roundUp(end, cs);
      data += countedTo - Math.floor(from / cs) * cs;
    }
  }
  const fullyAllocated = qcow2FullyAllocatedSize(virtualSize, g);
  const result: MeasureResult = { required: fullyAllocated - virtualSize + data, fullyAllocated };
  if (g.version >= 3 && req.source?.bitmaps) result.bitmaps = qcow2BitmapsSize(req.source.bitmaps, req.size, cs);
  return result;
}
