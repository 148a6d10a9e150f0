/**
 * The zstd codec as WebAssembly (@bokuweb/zstd-wasm), for hosts without libzstd
 * (zstd-native.ts is the usual path). The module loads on first use; each thread
 * keeps one compression and one decompression context for its lifetime, because
 * creating a context per cluster (what the library's one-shot calls do) allocates
 * and clears its match tables every time and costs more than compressing a 64 KiB
 * cluster. (The context calls take a dictionary; an empty one means none, and the
 * frames are byte for byte those of the one-shot calls.)
 *
 * The library's calls copy their input into the module's heap and return a fresh
 * copy of the result; this module copies that result into the caller's buffer.
 */
import { createRequire } from 'node:module';
import type { ZstdBackend } from './codec.js';

/** Contexts are pointers into the module's WebAssembly heap. */
interface ZstdWasm {
  init(): Promise<void>;
  createCCtx(): number;
  createDCtx(): number;
  compressUsingDict(cctx: number, buf: Uint8Array, dict: Uint8Array, level?: number): Uint8Array;
  decompressUsingDict(dctx: number, buf: Uint8Array, dict: Uint8Array, opts?: { defaultHeapSize: number }): Uint8Array;
}

const NO_DICTIONARY = new Uint8Array(0);

export async function loadWasmZstd(level: number): Promise<ZstdBackend> {
  const zstd = createRequire(import.meta.url)('@bokuweb/zstd-wasm') as ZstdWasm;
  await zstd.init();
  const cctx = zstd.createCCtx();
  const dctx = zstd.createDCtx();
  if (!cctx || !dctx) throw new Error('zstd: cannot allocate a compression context');
  return {
    name: 'wasm',
    compress(src, dst) {
      const out = zstd.compressUsingDict(cctx, src, NO_DICTIONARY, level);
      if (out.length > dst.length) return -1;
      dst.set(out);
      return out.length;
    },
    decompress(frame, dst) {
      // The heap size bounds the output: a frame that would produce more fails.
      const out = zstd.decompressUsingDict(dctx, frame, NO_DICTIONARY, { defaultHeapSize: dst.length });
      if (out.length > dst.length) throw new Error(`the frame produces more than ${dst.length} bytes`);
      dst.set(out);
      return out.length;
    },
  };
}
