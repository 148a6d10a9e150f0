/**
 * The two qcow2 cluster codecs, synchronous, as the compression workers run them.
 * The on-disk formats are QEMU's (docs/interop/qcow2.txt, "compression type"):
 *
 * - zlib (compression type 0): a raw deflate stream, no zlib header or checksum,
 *   written with a 4 KiB window (window bits 12), memLevel 9, default level, as QEMU's
 *   qcow2 writes it. Trailing sector padding after the stream's end is ignored, and an
 *   unfinished stream that already produced the whole cluster is accepted (as QEMU
 *   does); a stream that would produce more than the cluster is refused rather than
 *   inflated without bound.
 * - zstd (compression type 1): one Zstandard frame (RFC 8878). Its exact end is found
 *   by walking the frame (zstd-frame.ts), since the stored length is rounded to
 *   sectors. Compressed at zstd's default level (3), as QEMU does. The codec is the
 *   zstd library compiled to WebAssembly, loaded on first use; each thread keeps one
 *   compression and one decompression context for its lifetime, because creating a
 *   context per cluster (what the library's one-shot calls do) allocates and clears
 *   its match tables every time and costs more than compressing a 64 KiB cluster.
 *   (The context calls take a dictionary; an empty one means none, and the frames
 *   are byte for byte those of the one-shot calls.)
 *
 * compress returns null when the result would not be smaller than the input (qcow2
 * then stores the cluster uncompressed). decompress must produce exactly dst.length
 * bytes; a corrupt stream or a short result is an ImageFormatError.
 */
import { createRequire } from 'node:module';
import zlib from 'node:zlib';
import { ImageFormatError } from '../node.js';
import { scanZstdFrame } from './zstd-frame.js';

export type CompressionType = 'zlib' | 'zstd';

const ZLIB_WINDOW_BITS = 12;
const ZSTD_LEVEL = 3;

/** Contexts are pointers into the module's WebAssembly heap. */
interface ZstdWasm {
  init(): Promise<void>;
  createCCtx(): number;
  createDCtx(): number;
  compressUsingDict(cctx: number, buf: Uint8Array, dict: Uint8Array, level?: number): Uint8Array;
  decompressUsingDict(dctx: number, buf: Uint8Array, dict: Uint8Array, opts?: { defaultHeapSize: number }): Uint8Array;
}

interface ZstdCodec {
  compress(data: Uint8Array): Uint8Array;
  decompress(frame: Uint8Array, outLength: number): Uint8Array;
}

const NO_DICTIONARY = new Uint8Array(0);

let zstdReady: Promise<ZstdCodec> | null = null;

function loadZstd(): Promise<ZstdCodec> {
  zstdReady ??= (async () => {
    const zstd = createRequire(import.meta.url)('@bokuweb/zstd-wasm') as ZstdWasm;
    await zstd.init();
    const cctx = zstd.createCCtx();
    const dctx = zstd.createDCtx();
    if (!cctx || !dctx) throw new Error('zstd: cannot allocate a compression context');
    return {
      compress: (data) => zstd.compressUsingDict(cctx, data, NO_DICTIONARY, ZSTD_LEVEL),
      decompress: (frame, outLength) => zstd.decompressUsingDict(dctx, frame, NO_DICTIONARY, { defaultHeapSize: outLength }),
    };
  })();
  return zstdReady;
}

export function checkCompressionType(type: string): CompressionType {
  if (type !== 'zlib' && type !== 'zstd') {
    throw new Error(`Unknown compression type '${type}' (known: zlib, zstd)`);
  }
  return type;
}

/** Loads `type`'s codec now (the zstd module and contexts), so the first cluster does not wait for it. */
export async function loadCodec(type: CompressionType): Promise<void> {
  if (type === 'zstd') await loadZstd();
}

export async function encodeCluster(type: CompressionType, data: Uint8Array): Promise<Uint8Array | null> {
  let out: Uint8Array;
  if (type === 'zlib') {
    out = zlib.deflateRawSync(data, { windowBits: ZLIB_WINDOW_BITS, memLevel: 9, level: zlib.constants.Z_DEFAULT_COMPRESSION });
  } else {
    out = (await loadZstd()).compress(data);
  }
  return out.length < data.length ? out : null;
}

export async function decodeCluster(type: CompressionType, src: Uint8Array, outLength: number): Promise<Uint8Array> {
  let out: Uint8Array;
  if (type === 'zlib') {
    try {
      // Z_SYNC_FLUSH: a stream cut short still yields what it decoded; length is checked below.
      out = zlib.inflateRawSync(src, { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: outLength });
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE'
        ? `it decompresses to more than ${outLength} bytes`
        : (e as Error).message;
      throw new ImageFormatError(`corrupt zlib-compressed cluster: ${why}`);
    }
  } else {
    const frame = scanZstdFrame(src);
    if (frame.contentSize !== null && frame.contentSize !== outLength) {
      throw new ImageFormatError(
        `corrupt zstd-compressed cluster: the frame holds ${frame.contentSize} bytes, the cluster ${outLength}`,
      );
    }
    const zstd = await loadZstd();
    try {
      out = zstd.decompress(src.subarray(0, frame.length), outLength);
    } catch (e) {
      throw new ImageFormatError(`corrupt zstd-compressed cluster: ${(e as Error).message}`);
    }
  }
  if (out.length < outLength) {
    throw new ImageFormatError(`compressed cluster decompresses to ${out.length} bytes, expected ${outLength}`);
  }
  return out.length === outLength ? out : out.subarray(0, outLength);
}
