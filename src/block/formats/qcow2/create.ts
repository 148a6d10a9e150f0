/**
 * Creating qcow2 images with qemu-img 7.2's `-o` options and defaults (64 KiB
 * clusters, 16-bit refcounts, compat 1.1, zlib).
 *
 * The layout is QEMU's: cluster 0 holds the header (and backing file name),
 * cluster 1 the refcount table, cluster 2 the first refcount block (counting
 * clusters 0-2). The empty image is then opened and grown to its size the way
 * `resize` grows one, which places the L1 table at cluster 3 and preallocates
 * as asked (metadata: L2 tables and data clusters; falloc/full: host space too).
 *
 * External data files and encryption are refused with a message naming them.
 */
import { parseBool, parseSize } from '../../options.js';
import type { Preallocation } from '../../node.js';
import { openProtocol } from '../../protocols/index.js';
import type { CreateRequest } from '../format.js';
import { QCOW2_CREATE_OPTIONS } from './create-options.js';
import {
  COMPAT_LAZY_REFCOUNTS,
  type CompressionType,
  INCOMPAT_COMPRESSION,
  INCOMPAT_EXTENDED_L2,
  MAX_CLUSTER_BITS,
  MIN_CLUSTER_BITS,
  MIN_EXTENDED_L2_CLUSTER_BITS,
  newQcow2Header,
  serializeQcow2Header,
} from './header.js';
import { Qcow2Node } from './node.js';
import { setRefcountEntry } from './refcounts.js';

/** The validated settings of a new image. */
export interface Qcow2CreateSettings {
  version: 2 | 3;
  clusterBits: number;
  refcountOrder: number;
  lazyRefcounts: boolean;
  extendedL2: boolean;
  compressionType: CompressionType;
  preallocation: Preallocation;
  backingFile: string | null;
  backingFormat: string | null;
}

const V3_HINT = 'compatibility level 1.1 and above (use version=v3 or greater)';

/** Checks `-o` options the way qemu-img 7.2 does; throws with its messages. */
export function parseQcow2CreateOptions(options: Map<string, string>, preallocation?: Preallocation): Qcow2CreateSettings {
  for (const key of options.keys()) {
    if (!QCOW2_CREATE_OPTIONS.some((o) => o.name === key)) throw new Error(`Invalid parameter '${key}'`);
  }
  const get = (k: string): string | undefined => options.get(k);
  if (get('data_file') !== undefined || get('data_file_raw') !== undefined) {
    throw new Error('qcow2 external data files (data_file, data_file_raw) are not supported');
  }
  for (const key of options.keys()) {
    if (key === 'encryption' ? parseBool(get(key)!, key) : key.startsWith('encrypt.')) {
      throw new Error(`qcow2 encryption (${key}) is not supported`);
    }
  }

  const compat = get('compat') ?? '1.1';
  let version: 2 | 3;
  if (compat === '0.10' || compat === 'v2') version = 2;
  else if (compat === '1.1' || compat === 'v3') version = 3;
  else throw new Error(`Parameter 'version' does not accept value '${compat}'`);

  const clusterSize = parseSize(get('cluster_size') ?? '64k', 'cluster size');
  const clusterBits = Math.log2(clusterSize);
  if (!Number.isInteger(clusterBits) || clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    throw new Error('Cluster size must be a power of two between 512 and 2048k');
  }

  const refcountText = get('refcount_bits') ?? '16';
  const refcountBits = /^[0-9]+$/.test(refcountText) ? Number(refcountText) : NaN;
  const refcountOrder = Math.log2(refcountBits);
  if (!Number.isInteger(refcountOrder) || refcountOrder < 0 || refcountOrder > 6) {
    throw new Error('Refcount width must be a power of two and may not exceed 64 bits');
  }
  if (version === 2 && refcountBits !== 16) throw new Error(`Different refcount widths than 16 bits require ${V3_HINT}`);

  const lazyRefcounts = parseBool(get('lazy_refcounts') ?? 'off', 'lazy_refcounts');
  if (version === 2 && lazyRefcounts) throw new Error(`Lazy refcounts only supported with ${V3_HINT}`);

  const extendedL2 = parseBool(get('extended_l2') ?? 'off', 'extended_l2');
  if (extendedL2 && version === 2) throw new Error(`Extended L2 entries are only supported with ${V3_HINT}`);
  if (extendedL2 && clusterBits < MIN_EXTENDED_L2_CLUSTER_BITS) {
    throw new Error('Extended L2 entries are only supported with cluster sizes of at least 16384 bytes');
  }

  const compressionType = get('compression_type') ?? 'zlib';
  if (compressionType !== 'zlib' && compressionType !== 'zstd') {
    throw new Error(`Parameter 'compression-type' does not accept value '${compressionType}'`);
  }
  if (compressionType !== 'zlib' && version === 2) {
    throw new Error(`Non-zlib compression type is only supported with ${V3_HINT}`);
  }

  const prealloc = get('preallocation') ?? preallocation ?? 'off';
  if (!['off', 'metadata', 'falloc', 'full'].includes(prealloc)) {
    throw new Error(`Parameter 'preallocation' does not accept value '${prealloc}'`);
  }
  const backingFile = get('backing_file') ?? null;
  const backingFormat = get('backing_fmt') ?? null;
  if (backingFormat !== null && backingFile === null) throw new Error('Backing format cannot be used without backing file');
  if (backingFile !== null && prealloc !== 'off' && !extendedL2) {
    throw new Error('Backing file and preallocation can only be used at the same time if extended_l2 is on');
  }
  return {
    version,
    clusterBits,
    refcountOrder,
    lazyRefcounts,
    extendedL2,
    compressionType,
    preallocation: prealloc as Preallocation,
    backingFile,
    backingFormat,
  };
}

/** Creates a qcow2 image (`img create -f qcow2`). */
export async function createQcow2(req: CreateRequest): Promise<void> {
  const s = parseQcow2CreateOptions(req.options, req.preallocation);
  if (!Number.isSafeInteger(req.size) || req.size < 0) throw new Error(`Invalid image size ${req.size}`);
  const cs = 2 ** s.clusterBits;
  const header = newQcow2Header({
    version: s.version,
    clusterBits: s.clusterBits,
    size: 0,
    refcountOrder: s.refcountOrder,
    l1Size: 0,
    l1TableOffset: 0,
    refcountTableOffset: cs,
    refcountTableClusters: 1,
    incompatibleFeatures:
      (s.compressionType !== 'zlib' ? INCOMPAT_COMPRESSION : 0n) | (s.extendedL2 ? INCOMPAT_EXTENDED_L2 : 0n),
    compatibleFeatures: s.lazyRefcounts ? COMPAT_LAZY_REFCOUNTS : 0n,
    compressionType: s.compressionType,
    backingFilename: s.backingFile,
    backingFormat: s.backingFormat,
  });
  const image = new Uint8Array(3 * cs);
  image.set(serializeQcow2Header(header), 0);
  const view = new DataView(image.buffer);
  view.setBigUint64(cs, BigInt(2 * cs));
  const refcountBlock = new DataView(image.buffer, 2 * cs, cs);
  for (let cluster = 0; cluster < 3; cluster++) setRefcountEntry(refcountBlock, cluster, 2 ** s.refcountOrder, 1);

  const file = await openProtocol(req.filename, { create: true });
  try {
    await file.writeGrow(0, image);
    await file.flush();
  } finally {
    await file.close();
  }
  if (req.size === 0) return;
  const reopened = await openProtocol(req.filename);
  const node = await Qcow2Node.open(reopened, { readOnly: false }).catch(async (e: unknown) => {
    await reopened.close();
    throw e;
  });
  try {
    await node.truncate(req.size, { preallocation: s.preallocation });
  } finally {
    await node.close();
  }
}
