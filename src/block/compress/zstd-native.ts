/**
 * The zstd codec through the system's libzstd (libzstd.so.1, the library qemu-img
 * itself links), called with koffi: no compiler at install, and about twice the
 * speed of the WebAssembly build on a 64 KiB cluster (native code with the
 * library's hand-tuned paths, against wasm32 without them).
 *
 * The calls take the caller's byte arrays as pointers, so a cluster is compressed
 * straight from the copy engine's shared chunk buffer into the shared output area,
 * and decoded straight into its destination: no copy on either side. The library
 * loads once per thread (nativeZstd() returns null when it cannot be loaded: no
 * libzstd1 on the host; codec.ts then falls back to zstd-wasm.ts).
 *
 * Two ways to call it, both with the frames of the one-shot ZSTD_compress at the
 * given level (ZSTD_compressCCtx / ZSTD_decompressDCtx reset a context per call):
 * - backend(): synchronous, on the calling thread, with one compression and one
 *   decompression context kept for the thread's lifetime;
 * - NativeZstdQueue: asynchronous, each call run by koffi on one of libuv's pool
 *   threads, so the main thread compresses on every core with no worker thread
 *   to start and no message per cluster. At most `concurrency` calls run at once
 *   (the rest wait in order, and libuv keeps threads for file I/O); each running
 *   call owns a context from a free list, created on demand and kept. Callers must
 *   leave the bytes alone until their call settles.
 *
 * libzstd reports an error as a size_t near 2^64, which koffi hands over as a
 * BigInt (any real length is a Number); its text comes from ZSTD_getErrorName.
 */
import { createRequire } from 'node:module';
import type * as Koffi from 'koffi';
import type { ZstdBackend } from './codec.js';

type SizeOrError = number | bigint;

/** A koffi function, called synchronously or (async) on a libuv pool thread. */
interface Fn<A extends unknown[], R> {
  (...args: A): R;
  async(...args: [...A, (err: Error | null, r: R) => void]): void;
}

type CompressArgs = [cctx: unknown, dst: Uint8Array, dstCapacity: number, src: Uint8Array, srcSize: number, level: number];
type DecompressArgs = [dctx: unknown, dst: Uint8Array, dstCapacity: number, src: Uint8Array, srcSize: number];

interface Library {
  createCCtx(): unknown;
  createDCtx(): unknown;
  compressCCtx: Fn<CompressArgs, SizeOrError>;
  decompressDCtx: Fn<DecompressArgs, SizeOrError>;
  errorName(code: SizeOrError): string;
}

let library: Library | null | undefined;

function load(): Library | null {
  if (library !== undefined) return library;
  const koffi = createRequire(import.meta.url)('koffi') as typeof Koffi;
  let lib: Koffi.LibraryHandle;
  try {
    lib = koffi.load('libzstd.so.1');
  } catch {
    library = null;
    return null;
  }
  library = {
    createCCtx: lib.func('void *ZSTD_createCCtx(void)') as () => unknown,
    createDCtx: lib.func('void *ZSTD_createDCtx(void)') as () => unknown,
    compressCCtx: lib.func(
      'size_t ZSTD_compressCCtx(void *cctx, void *dst, size_t dstCapacity, const void *src, size_t srcSize, int level)',
    ) as Fn<CompressArgs, SizeOrError>,
    decompressDCtx: lib.func(
      'size_t ZSTD_decompressDCtx(void *dctx, void *dst, size_t dstCapacity, const void *src, size_t srcSize)',
    ) as Fn<DecompressArgs, SizeOrError>,
    errorName: lib.func('const char *ZSTD_getErrorName(size_t code)') as (code: SizeOrError) => string,
  };
  return library;
}

function context(create: () => unknown): unknown {
  const ctx = create();
  if (!ctx) throw new Error('zstd: cannot allocate a compression context');
  return ctx;
}

/** The only error a valid compression call can meet is a frame that does not fit in dst: -1. */
const compressedLength = (r: SizeOrError): number => (typeof r === 'number' ? r : -1);

/** Whether libzstd loads on this thread. */
export function hasNativeZstd(): boolean {
  return load() !== null;
}

/** The synchronous codec on this thread, or null without libzstd. */
export function nativeZstdBackend(level: number): ZstdBackend | null {
  const z = load();
  if (!z) return null;
  const cctx = context(z.createCCtx);
  const dctx = context(z.createDCtx);
  return {
    name: 'libzstd',
    compress: (src, dst) => compressedLength(z.compressCCtx(cctx, dst, dst.length, src, src.length, level)),
    decompress(frame, dst) {
      const r = z.decompressDCtx(dctx, dst, dst.length, frame, frame.length);
      if (typeof r !== 'number') throw new Error(z.errorName(r));
      return r;
    },
  };
}

/** libzstd on libuv's pool threads; construct only where hasNativeZstd(). */
export class NativeZstdQueue {
  private readonly z = load()!;
  private readonly idle: { c: unknown[]; d: unknown[] } = { c: [], d: [] };
  private readonly waiting: Array<() => void> = [];
  private running = 0;

  constructor(private readonly level: number, private readonly concurrency: number) {}

  /** Compresses `src` into `dst` as one frame: its length, or -1 when it does not fit in `dst`. */
  compress(src: Uint8Array, dst: Uint8Array): Promise<number> {
    return this.call('c', this.z.createCCtx, (ctx, done) =>
      this.z.compressCCtx.async(ctx, dst, dst.length, src, src.length, this.level, done)).then(compressedLength);
  }

  /** Decodes one whole frame into `dst`: the number of bytes produced; rejects with libzstd's reason. */
  async decompress(frame: Uint8Array, dst: Uint8Array): Promise<number> {
    const r = await this.call('d', this.z.createDCtx, (ctx, done) =>
      this.z.decompressDCtx.async(ctx, dst, dst.length, frame, frame.length, done));
    if (typeof r !== 'number') throw new Error(this.z.errorName(r));
    return r;
  }

  private async call(
    kind: 'c' | 'd',
    create: () => unknown,
    start: (ctx: unknown, done: (err: Error | null, r: SizeOrError) => void) => void,
  ): Promise<SizeOrError> {
    await this.acquire();
    let ctx: unknown = null;
    try {
      ctx = this.idle[kind].pop() ?? context(create);
      return await new Promise<SizeOrError>((resolve, reject) => start(ctx, (err, r) => (err ? reject(err) : resolve(r))));
    } finally {
      if (ctx) this.idle[kind].push(ctx);
      this.release();
    }
  }

  private async acquire(): Promise<void> {
    if (this.running < this.concurrency) this.running++;
    else await new Promise<void>((resume) => this.waiting.push(resume));
  }

  /** Hands the finished call's slot to the first waiting call, if any. */
  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }
}
