/**
 * Byte access to a descriptor chain's buffers as two flat streams: the
 * device-readable bytes and the device-writable bytes, whatever the driver's
 * framing (the spec forbids devices to assume one). Reads within one buffer
 * return a view (no copy); reads across buffers copy into a new array.
 * Callers check lengths first: running past the end throws a RangeError.
 */
import type { DescriptorChain } from './virtqueue.js';

/** `length` bytes of the readable stream from `offset` (a view when they lie in one buffer). */
export function readableBytes(chain: DescriptorChain, offset: number, length: number): Uint8Array {
  return gather(chain.readable, offset, length);
}

/** The buffer holding stream offset `offset` (past zero-length ones) and the offset within it. */
function locate(parts: readonly Uint8Array[], offset: number): { part: Uint8Array | undefined; skip: number; index: number } {
  let skip = offset;
  let index = 0;
  while (index < parts.length && skip >= parts[index]!.length) skip -= parts[index++]!.length;
  return { part: parts[index], skip, index };
}

function gather(parts: readonly Uint8Array[], offset: number, length: number): Uint8Array {
  const found = locate(parts, offset);
  let { skip, index: i } = found;
  if (found.part && skip + length <= found.part.length) return found.part.subarray(skip, skip + length);
  const out = new Uint8Array(length);
  let done = 0;
  for (; i < parts.length && done < length; i++) {
    const piece = parts[i]!.subarray(skip, skip + length - done);
    out.set(piece, done);
    done += piece.length;
    skip = 0;
  }
  if (done < length) throw new RangeError(`chain has ${done} of ${length} bytes from offset ${offset}`);
  return out;
}

/** Copies `bytes` into the writable stream at `offset`. */
export function writeToChain(chain: DescriptorChain, offset: number, bytes: Uint8Array): void {
  const parts = chain.writable;
  let { skip, index } = locate(parts, offset);
  let done = 0;
  for (; index < parts.length && done < bytes.length; index++) {
    const part = parts[index]!;
    const n = Math.min(part.length - skip, bytes.length - done);
    part.set(bytes.subarray(done, done + n), skip);
    done += n;
    skip = 0;
  }
  if (done < bytes.length) throw new RangeError(`chain has room for ${done} of ${bytes.length} bytes at offset ${offset}`);
}

/** Index of the writable stream's last non-empty buffer (the one holding its last byte), or -1. */
function lastWritable(parts: readonly Uint8Array[]): number {
  let i = parts.length - 1;
  while (i >= 0 && parts[i]!.length === 0) i--;
  return i;
}

/** Sets the last byte of the writable stream (a request's status byte); the chain has at least one. */
export function writeLastByte(chain: DescriptorChain, value: number): void {
  const part = chain.writable[lastWritable(chain.writable)];
  if (!part) throw new RangeError('chain has no writable byte');
  part[part.length - 1] = value;
}

/** The writable buffers up to but without the stream's last byte (views, no copy): e.g. an IN request's data. */
export function writableBeforeLastByte(chain: DescriptorChain): Uint8Array[] {
  const last = lastWritable(chain.writable);
  if (last < 0) return [];
  const parts = chain.writable.slice(0, last);
  const tail = chain.writable[last]!;
  if (tail.length > 1) parts.push(tail.subarray(0, tail.length - 1));
  return parts;
}
