/**
 * The zstd codec through the system's libzstd (libzstd.so.1, the library qemu-img
 * itself links), called with koffi: no compiler at install, and about twice the
 * speed of the WebAssembly build on a 64 KiB cluster (native code with the
 * library's hand-tuned paths, against wasm32 without them).
 *
 * The calls take the caller's byte arrays as pointers, so a cluster is compressed
 * straight from the copy engine's shared chunk buffer into the shared output area,
 * and decoded straight into its destination: no copy on either side. The library
 * loads once per thread; where it cannot (no libzstd1, or no koffi build for the
 * platform) hasNativeZstd() is false and nativeZstdBackend() null, and the
 * callers fall back to zstd-wasm.ts.
 *
 * Two ways to call it, both with the frames of the one-shot ZSTD_compress at the
 * given level (ZSTD_compressCCtx / ZSTD_decompressDCtx reset a context per call):
 * - nativeZstdBackend(): synchronous, on the calling thread, with one compression
 *   and one decompression context kept for the thread's lifetime;
 * - NativeZstdQueue: asynchronous, each call run by koffi on one of libuv's pool
 *   threads, so clusters compress in parallel off the main thread with no worker
 *   thread to start and no message per cluster. At most `concurrency` calls run at once
 *   (the rest wait in order); each running call owns a context from a free list,
 *   created on demand and kept. Requests are plain callbacks, one promise per
 *   batch (a promise and an async function per cluster cost more than koffi's
 *   own hand-off to the thread). Callers leave the bytes alone until the batch
 *   settles, which is only once every call in it has finished.
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
  let lib: Koffi.LibraryHandle;
  try {
    lib = (createRequire(import.meta.url)('koffi') as typeof Koffi).load('libzstd.so.1');
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

type Done = (err: Error | null, r: SizeOrError) => void;

/** One call waiting for a slot: `start` makes it with a context, `finish` gets its outcome. */
interface Job {
  kind: 'c' | 'd';
  start(ctx: unknown, done: Done): void;
  finish: Done;
}

/** libzstd on libuv's pool threads; construct only where hasNativeZstd(). */
export class NativeZstdQueue {
  private readonly z = load()!;
  private readonly idle = { c: [] as unknown[], d: [] as unknown[] };
  private readonly jobs: Job[] = [];
  private running = 0;

  constructor(private readonly level: number, private readonly concurrency: number) {}

  /** Compresses each of `srcs` into its `dsts` as one frame: per pair the frame's length, or -1 when it did not fit. */
  async compressAll(srcs: readonly Uint8Array[], dsts: readonly Uint8Array[]): Promise<number[]> {
    const results = await this.run('c', srcs.length, (i, ctx, done) =>
      this.z.compressCCtx.async(ctx, dsts[i]!, dsts[i]!.length, srcs[i]!, srcs[i]!.length, this.level, done));
    return results.map(compressedLength);
  }

  /** Decodes one whole frame into `dst`: the number of bytes produced; rejects with libzstd's reason. */
  async decompress(frame: Uint8Array, dst: Uint8Array): Promise<number> {
    const [r] = await this.run('d', 1, (_, ctx, done) => this.z.decompressDCtx.async(ctx, dst, dst.length, frame, frame.length, done));
    if (typeof r !== 'number') throw new Error(this.z.errorName(r!));
    return r;
  }

  /**
   * Queues `n` calls and settles when every one has finished (so no call still
   * uses the caller's memory): with their results in order, or the first error.
   */
  private run(kind: Job['kind'], n: number, start: (i: number, ctx: unknown, done: Done) => void): Promise<SizeOrError[]> {
    return new Promise((resolve, reject) => {
      const results = new Array<SizeOrError>(n);
      let left = n;
      let failure: Error | null = null;
      if (n === 0) resolve(results);
      for (let i = 0; i < n; i++) {
        this.jobs.push({
          kind,
          start: (ctx, done) => start(i, ctx, done),
          finish: (err, r) => {
            if (err) failure ??= err;
            else results[i] = r;
            if (--left === 0) (failure ? reject(failure) : resolve(results));
          },
        });
      }
      this.pump();
    });
  }

  /** Starts waiting calls while slots are free; each finished call gives its slot and context back. */
  private pump(): void {
    while (this.running < this.concurrency && this.jobs.length > 0) {
      const job = this.jobs.shift()!;
      const idle = this.idle[job.kind];
      let ctx: unknown;
      try {
        ctx = idle.pop() ?? context(job.kind === 'c' ? this.z.createCCtx : this.z.createDCtx);
      } catch (e) {
        job.finish(e as Error, -1);
        continue;
      }
      this.running++;
      job.start(ctx, (err, r) => {
        idle.push(ctx);
        this.running--;
        this.pump();
        job.finish(err, r);
      });
    }
  }
}
