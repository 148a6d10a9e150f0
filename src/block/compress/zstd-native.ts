/**
 * The zstd codec through the system's libzstd (libzstd.so.1, the library qemu-img
 * itself links), called with koffi: no compiler at install, and about twice the
 * speed of the WebAssembly build on a 64 KiB cluster (native code with the
 * library's hand-tuned paths, against wasm32 without them).
 *
 * The calls take the caller's byte arrays as pointers, so a cluster is compressed
 * straight from the copy engine's shared chunk buffer into the shared output area,
 * and decoded straight into its destination: no copy on either side. Each thread
 * loads the library once and keeps one compression and one decompression context
 * for its lifetime (ZSTD_compressCCtx / ZSTD_decompressDCtx reset them per call;
 * the frames are those of the one-shot ZSTD_compress at the same level).
 *
 * libzstd reports an error as a size_t near 2^64, which koffi hands over as a
 * BigInt (any real length is a Number); the error's text comes from
 * ZSTD_getErrorName. loadNativeZstd() returns null when the library cannot be
 * loaded (no libzstd1 on the host): codec.ts then falls back to zstd-wasm.ts.
 */
import { createRequire } from 'node:module';
import type * as Koffi from 'koffi';
import type { ZstdBackend } from './codec.js';

type SizeOrError = number | bigint;

export function loadNativeZstd(level: number): ZstdBackend | null {
  let lib: Koffi.LibraryHandle;
  const koffi = createRequire(import.meta.url)('koffi') as typeof Koffi;
  try {
    lib = koffi.load('libzstd.so.1');
  } catch {
    return null;
  }
  const createCCtx = lib.func('void *ZSTD_createCCtx(void)') as () => unknown;
  const createDCtx = lib.func('void *ZSTD_createDCtx(void)') as () => unknown;
  const compressCCtx = lib.func(
    'size_t ZSTD_compressCCtx(void *cctx, void *dst, size_t dstCapacity, const void *src, size_t srcSize, int level)',
  ) as (cctx: unknown, dst: Uint8Array, dstCapacity: number, src: Uint8Array, srcSize: number, level: number) => SizeOrError;
  const decompressDCtx = lib.func(
    'size_t ZSTD_decompressDCtx(void *dctx, void *dst, size_t dstCapacity, const void *src, size_t srcSize)',
  ) as (dctx: unknown, dst: Uint8Array, dstCapacity: number, src: Uint8Array, srcSize: number) => SizeOrError;
  const errorName = lib.func('const char *ZSTD_getErrorName(size_t code)') as (code: SizeOrError) => string;

  const cctx = createCCtx();
  const dctx = createDCtx();
  if (!cctx || !dctx) throw new Error('zstd: cannot allocate a compression context');
  return {
    name: 'libzstd',
    compress(src, dst) {
      const r = compressCCtx(cctx, dst, dst.length, src, src.length, level);
      // The only error a valid call can meet: the frame does not fit in dst.
      return typeof r === 'number' ? r : -1;
    },
    decompress(frame, dst) {
      const r = decompressDCtx(dctx, dst, dst.length, frame, frame.length);
      if (typeof r !== 'number') throw new Error(errorName(r));
      return r;
    },
  };
}
