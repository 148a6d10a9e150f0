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
 */
import { type CompressionType, checkCompressionType } from './codec.js';
import { CodecPool } from './pool.js';

export type { CompressionType } from './codec.js';

let pool: CodecPool | null = null;

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
