/**
 * Fresh frames without a memory allocation each: a frame of up to a quarter slab
 * is a view carved from the current 64 KiB slab (an ArrayBuffer, zero-filled when
 * made), each region handed out once and never reused, so the frame belongs to
 * whoever receives it, as backend.ts promises; a larger frame gets an ArrayBuffer
 * of its own. An ArrayBuffer of a frame's size costs a calloc, a backing-store
 * registration and a sweep after it dies, which dominated the user stack's
 * per-frame cost; a view costs a small heap object. Views start 8-byte aligned (word
 * reads of a frame's fields and checksums line up as in a frame of its own). A
 * frame kept for long keeps its slab alive (at most 64 KiB).
 * Users of a frame's memory must honour byteOffset (new DataView(f.buffer, f.byteOffset, f.byteLength)).
 */
const SLAB_SIZE = 64 << 10;
const LARGEST_CARVED = SLAB_SIZE / 4;

let slab = new ArrayBuffer(SLAB_SIZE);
let used = 0;

/** A zero-filled frame of `length` bytes, the caller's to keep. */
export function freshFrame(length: number): Uint8Array {
  if (length > LARGEST_CARVED) return new Uint8Array(length);
  if (used + length > SLAB_SIZE) {
    slab = new ArrayBuffer(SLAB_SIZE);
    used = 0;
  }
  const frame = new Uint8Array(slab, used, length);
  used = (used + length + 7) & ~7;
  return frame;
}

/** A fresh copy of bytes[start, end) (freshFrame's memory). */
export function copyFrame(bytes: Uint8Array, start: number, end: number): Uint8Array {
  const frame = freshFrame(end - start);
  frame.set(bytes.subarray(start, end));
  return frame;
}
