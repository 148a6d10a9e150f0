/**
 * Compression of qcow2 clusters, QEMU-compatible (codec.ts has the formats), run on
 * a shared pool of worker threads (pool.ts) created on first use.
 *
 * compressCluster(type, data) resolves to the compressed bytes, or null when they
 * would not be smaller than `data`. decompressCluster(type, src, dst) fills `dst`
 * exactly; `src` may run past the end of the compressed stream (qcow2 stores lengths
 * in 512-byte sectors). A corrupt or short stream rejects with an ImageFormatError.
 * Input bytes must not change until their request settles (a SharedArrayBuffer is
 * read in place by the worker). warmCompression(type) starts the workers early.
 *
 * withCompressedClusters(type, data, clusterSize, use) is the bulk form a format's
 * compressed write uses: the workers compress every cluster of `data` (the last
 * one zero-padded to a whole cluster) into a staging SharedArrayBuffer, and `use`
 * gets the results in order (views into the staging buffer, null where a cluster
 * did not shrink), valid until `use` settles. `data` in a SharedArrayBuffer
 * (whole clusters) is read where it is; other data is first copied into a second
 * staging buffer. So the caller's thread allocates nothing per cluster and copies
 * nothing back, which keeps the garbage collector out of a long compressed
 * convert. Staging buffers are reused; up to MAX_IDLE_STAGING of them are kept
 * between calls.
 */
import { type CompressionType, checkCompressionType } from './codec.js';
import { CodecPool } from './pool.js';

export type { CompressionType } from './codec.js';

const MAX_IDLE_STAGING = 16;

let pool: CodecPool | null = null;
const idleStaging: SharedArrayBuffer[] = [];

function sharedPool(): CodecPool {
  pool ??= new CodecPool();
  return pool;
}

/**
 * Starts the compression workers and loads `type`'s codec in each, ahead of the
 * first compressCluster (a converter calls this before opening its images).
 */
export function warmCompression(type: CompressionType): void {
  sharedPool().warm(checkCompressionType(type));
}

export async function compressCluster(type: CompressionType, data: Uint8Array): Promise<Uint8Array | null> {
  return sharedPool().run('compress', checkCompressionType(type), data);
}

export async function decompressCluster(type: CompressionType, src: Uint8Array, dst: Uint8Array): Promise<void> {
  const out = await sharedPool().run('decompress', checkCompressionType(type), src, dst.length);
  dst.set(out!);
}

export async function withCompressedClusters<T>(
  type: CompressionType,
  data: Uint8Array,
  clusterSize: number,
  use: (compressed: Array<Uint8Array | null>) => Promise<T>,
): Promise<T> {
  checkCompressionType(type);
  const length = Math.ceil(data.length / clusterSize) * clusterSize;
  // Shared whole clusters are read where they are; anything else is copied (and padded) first.
  const inPlace = data.buffer instanceof SharedArrayBuffer && data.length === length;
  const taken = [takeStaging(length)];
  try {
    const output = new Uint8Array(taken[0]!, 0, length);
    let input = data;
    if (!inPlace) {
      taken.push(takeStaging(length));
      input = new Uint8Array(taken[1]!, 0, length);
      input.set(data);
      input.fill(0, data.length);
    }
    const requests: Promise<Uint8Array | null>[] = [];
    for (let at = 0; at < length; at += clusterSize) {
      const end = at + clusterSize;
      requests.push(sharedPool().run('compress-into', type, input.subarray(at, end), 0, output.subarray(at, end)));
    }
    // Every request settles before the staging buffers can be reused.
    const settled = await Promise.allSettled(requests);
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    return await use(settled.map((r) => (r as PromiseFulfilledResult<Uint8Array | null>).value));
  } finally {
    for (const b of taken) if (idleStaging.length < MAX_IDLE_STAGING) idleStaging.push(b);
  }
}

/** An idle staging buffer of at least `length` bytes, or a new one. */
function takeStaging(length: number): SharedArrayBuffer {
  const i = idleStaging.findIndex((b) => b.byteLength >= length);
  return i >= 0 ? idleStaging.splice(i, 1)[0]! : new SharedArrayBuffer(length);
}
