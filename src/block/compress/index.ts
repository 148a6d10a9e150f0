/**
 * Compression of qcow2 clusters, QEMU-compatible (codec.ts has the formats), off
 * the caller's thread. Two engines, chosen per call by compression type:
 * - zstd with the system's libzstd: NativeZstdQueue (zstd-native.ts) runs each
 *   cluster as one call on libuv's pool threads, NATIVE_ZSTD_CALLS at once at most,
 *   reading and writing the caller's memory in place. No thread to start, no
 *   message per cluster: the pool costs a few microseconds per cluster.
 * - zlib, and zstd where libzstd is missing (the WebAssembly build): a shared pool
 *   of worker threads (pool.ts) created on first use.
 *
 * compressCluster(type, data) resolves to the compressed bytes, or null when they
 * would not be smaller than `data`. decompressCluster(type, src, dst) fills `dst`
 * exactly (libzstd decodes straight into it, so a failed request may leave part
 * of it written); `src` may run past the end of the compressed stream (qcow2
 * stores lengths in 512-byte sectors). A corrupt or short stream rejects with an
 * ImageFormatError. Input bytes must not change until their request settles (they
 * are read in place: by libzstd, or by a worker when in a SharedArrayBuffer).
 * warmCompression(type) loads the codec (or starts the workers) early.
 *
 * withCompressedClusters(type, data, clusterSize, use) is the bulk form a format's
 * compressed write uses: every cluster of `data` (the last one zero-padded to a
 * whole cluster) is compressed into a staging SharedArrayBuffer, and `use` gets
 * the results in order (views into the staging buffer, null where a cluster did
 * not shrink), valid until `use` settles. `data` in a SharedArrayBuffer (whole
 * clusters) is read where it is; other data is first copied into a second
 * staging buffer. So the caller's thread allocates nothing per cluster and copies
 * nothing back, which keeps the garbage collector out of a long compressed
 * convert. Staging buffers are reused; up to MAX_IDLE_STAGING of them are kept
 * between calls.
 */
import {
  type CompressionType, ZSTD_LEVEL, checkCompressionType, checkDecodedLength, compressedPart, compressionRoom, corruptZstd,
  zstdClusterFrame,
} from './codec.js';
import { CodecPool } from './pool.js';
import { NativeZstdQueue, hasNativeZstd } from './zstd-native.js';

export type { CompressionType } from './codec.js';

const MAX_IDLE_STAGING = 16;
/**
 * libzstd calls handed to libuv at once: with its default 4 pool threads, each runs
 * one, as QEMU's qcow2 driver runs 4 compression threads, and each has one more
 * waiting in libuv's queue, so a thread that finishes starts the next cluster
 * without waiting for the main thread to hand it over (a busy or descheduled
 * main thread otherwise leaves the pool idle). On a host with fewer cores,
 * bin/tsemu.js gives img commands fewer pool threads and more calls wait in the
 * queue (measured on 2 cores: no change in a zstd convert). A context is about
 * 650 KiB for a 64 KiB cluster. File I/O shares the pool: a read waits behind a
 * few clusters.
 */
const NATIVE_ZSTD_CALLS = 8;

let pool: CodecPool | null = null;
let zstdQueue: NativeZstdQueue | null | undefined;
const idleStaging: SharedArrayBuffer[] = [];

function sharedPool(): CodecPool {
  pool ??= new CodecPool();
  return pool;
}

/** libzstd on libuv's threads, when `type` is zstd and the library loads; else null (the worker pool). */
function nativeQueue(type: CompressionType): NativeZstdQueue | null {
  if (type !== 'zstd') return null;
  zstdQueue ??= hasNativeZstd() ? new NativeZstdQueue(ZSTD_LEVEL, NATIVE_ZSTD_CALLS) : null;
  return zstdQueue;
}

/**
 * Loads `type`'s codec, or starts the compression workers and loads it in each,
 * ahead of the first compressCluster (a converter calls this before opening its images).
 */
export function warmCompression(type: CompressionType): void {
  if (!nativeQueue(checkCompressionType(type))) sharedPool().warm(type);
}

export async function compressCluster(type: CompressionType, data: Uint8Array): Promise<Uint8Array | null> {
  checkCompressionType(type);
  const queue = nativeQueue(type);
  if (!queue) return sharedPool().run('compress', type, data);
  return (await compressNative(queue, [data], [new Uint8Array(data.length)]))[0]!;
}

export async function decompressCluster(type: CompressionType, src: Uint8Array, dst: Uint8Array): Promise<void> {
  checkCompressionType(type);
  const queue = nativeQueue(type);
  if (!queue) {
    dst.set((await sharedPool().run('decompress', type, src, dst.length))!);
    return;
  }
  const frame = zstdClusterFrame(src, dst.length);
  const n = await queue.decompress(frame, dst).catch((e: Error) => {
    throw corruptZstd(e);
  });
  checkDecodedLength(n, dst.length);
}

export async function withCompressedClusters<T>(
  type: CompressionType,
  data: Uint8Array,
  clusterSize: number,
  use: (compressed: Array<Uint8Array | null>) => Promise<T>,
): Promise<T> {
  checkCompressionType(type);
  const queue = nativeQueue(type);
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
    const pieces: Uint8Array[] = [];
    const intos: Uint8Array[] = [];
    for (let at = 0; at < length; at += clusterSize) {
      pieces.push(input.subarray(at, at + clusterSize));
      intos.push(output.subarray(at, at + clusterSize));
    }
    const compressed = queue ? await compressNative(queue, pieces, intos) : await compressInWorkers(type, pieces, intos);
    return await use(compressed);
  } finally {
    for (const b of taken) if (idleStaging.length < MAX_IDLE_STAGING) idleStaging.push(b);
  }
}

/** Clusters through libzstd into `intos`: views of the frames there, null where one would not be smaller. */
async function compressNative(queue: NativeZstdQueue, pieces: Uint8Array[], intos: Uint8Array[]): Promise<Array<Uint8Array | null>> {
  const rooms = pieces.map((p, i) => compressionRoom(p, intos[i]!));
  const lengths = await queue.compressAll(pieces, rooms);
  return lengths.map((n, i) => compressedPart(rooms[i]!, n));
}

/** The same through the worker pool; settles once every request has (the staging buffers are reused after). */
async function compressInWorkers(type: CompressionType, pieces: Uint8Array[], intos: Uint8Array[]): Promise<Array<Uint8Array | null>> {
  const settled = await Promise.allSettled(pieces.map((p, i) => sharedPool().run('compress-into', type, p, 0, intos[i]!)));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<Uint8Array | null>).value);
}

/** An idle staging buffer of at least `length` bytes, or a new one. */
function takeStaging(length: number): SharedArrayBuffer {
  const i = idleStaging.findIndex((b) => b.byteLength >= length);
  return i >= 0 ? idleStaging.splice(i, 1)[0]! : new SharedArrayBuffer(length);
}
