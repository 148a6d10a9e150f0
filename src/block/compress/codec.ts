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
 *   system's libzstd (zstd-native.ts), or where that cannot be loaded the library
 *   compiled to WebAssembly (zstd-wasm.ts); either loads on first use, once per
 *   thread. Both write standard frames that either one (and QEMU) decodes.
 *
 * encodeCluster returns null when the result would not be smaller than the input
 * (qcow2 then stores the cluster uncompressed); given `into`, it writes the result
 * there (zstd compresses straight into it) and returns a view of it. decodeCluster
 * must produce exactly outLength bytes; a corrupt stream or a short result is an
 * ImageFormatError.
 */
import zlib from 'node:zlib';
import { ImageFormatError } from '../node.js';
import { scanZstdFrame } from './zstd-frame.js';
import { nativeZstdBackend } from './zstd-native.js';
import { loadWasmZstd } from './zstd-wasm.js';

export type CompressionType = 'zlib' | 'zstd';
export type ZstdBackendName = 'libzstd' | 'wasm';

/** One thread's zstd codec, working in the caller's buffers. */
export interface ZstdBackend {
  readonly name: ZstdBackendName;
  /** Compresses `src` into `dst` as one frame: the frame's length, or -1 when it does not fit in `dst`. */
  compress(src: Uint8Array, dst: Uint8Array): number;
  /** Decodes one whole frame into `dst`: the number of bytes produced. Throws when the frame is corrupt or too large. */
  decompress(frame: Uint8Array, dst: Uint8Array): number;
}

const ZLIB_WINDOW_BITS = 12;
/** zstd's default level, as QEMU compresses. */
export const ZSTD_LEVEL = 3;

let zstdReady: Promise<ZstdBackend> | null = null;

function loadZstd(): Promise<ZstdBackend> {
  zstdReady ??= Promise.resolve().then(() => nativeZstdBackend(ZSTD_LEVEL) ?? loadWasmZstd(ZSTD_LEVEL));
  return zstdReady;
}

/** `name`'s zstd codec for this thread, whatever the default is (tests compare the two). */
export async function zstdBackend(name: ZstdBackendName): Promise<ZstdBackend | null> {
  return name === 'libzstd' ? nativeZstdBackend(ZSTD_LEVEL) : loadWasmZstd(ZSTD_LEVEL);
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

/**
 * Where a cluster's compressed form may go in `into`: one byte less than the data,
 * since a result that does not fit would not be smaller.
 */
export function compressionRoom(data: Uint8Array, into: Uint8Array): Uint8Array {
  return into.subarray(0, data.length - 1);
}

/** The `n` compressed bytes at the start of `room`, or null when they did not fit (n < 0). */
export function compressedPart(room: Uint8Array, n: number): Uint8Array | null {
  return n < 0 ? null : room.subarray(0, n);
}

export async function encodeCluster(type: CompressionType, data: Uint8Array, into?: Uint8Array): Promise<Uint8Array | null> {
  if (type === 'zstd') {
    const room = compressionRoom(data, into ?? new Uint8Array(data.length));
    return compressedPart(room, (await loadZstd()).compress(data, room));
  }
  const out = zlib.deflateRawSync(data, { windowBits: ZLIB_WINDOW_BITS, memLevel: 9, level: zlib.constants.Z_DEFAULT_COMPRESSION });
  if (out.length >= data.length) return null;
  if (!into) return out;
  into.set(out);
  return into.subarray(0, out.length);
}

/**
 * The exact zstd frame at the start of `src` (the rest is sector padding), checked
 * against the cluster's length where the frame declares its content size.
 */
export function zstdClusterFrame(src: Uint8Array, outLength: number): Uint8Array {
  const frame = scanZstdFrame(src);
  if (frame.contentSize !== null && frame.contentSize !== outLength) {
    throw new ImageFormatError(
      `corrupt zstd-compressed cluster: the frame holds ${frame.contentSize} bytes, the cluster ${outLength}`,
    );
  }
  return src.subarray(0, frame.length);
}

/** A libzstd or wasm decoding failure, as the error a reader reports. */
export function corruptZstd(e: Error): ImageFormatError {
  return new ImageFormatError(`corrupt zstd-compressed cluster: ${e.message}`);
}

/** Refuses a cluster that decoded to fewer than `outLength` bytes. */
export function checkDecodedLength(n: number, outLength: number): void {
  if (n < outLength) throw new ImageFormatError(`compressed cluster decompresses to ${n} bytes, expected ${outLength}`);
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
    const frame = zstdClusterFrame(src, outLength);
    const zstd = await loadZstd();
    out = new Uint8Array(outLength);
    try {
      out = out.subarray(0, zstd.decompress(frame, out));
    } catch (e) {
      throw corruptZstd(e as Error);
    }
  }
  checkDecodedLength(out.length, outLength);
  return out.length === outLength ? out : out.subarray(0, outLength);
}
