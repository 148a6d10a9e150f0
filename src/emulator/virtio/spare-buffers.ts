/**
 * Spare host buffers for a device's bulk data (virtio-blk's IN requests),
 * handed out and taken back instead of a fresh array per request: allocating
 * and zero-filling 64 KiB, and collecting it again, cost more than the cached
 * read that fills it.
 *
 * take(bytes) returns a view of exactly `bytes` bytes of a spare buffer at
 * least that large (the smallest that fits), or of a new one; give(view)
 * returns it. A view holds what its last user left there: callers fill it
 * before they read it. At most SPARES buffers of at most SPARE_BYTES each are
 * kept; larger or surplus ones are left to the garbage collector.
 */
const SPARES = 8;
const SPARE_BYTES = 1 << 20;

export class SpareBuffers {
  private readonly free: Uint8Array[] = [];

  take(bytes: number): Uint8Array {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const length = this.free[i]!.length;
      if (length >= bytes && (best < 0 || length < this.free[best]!.length)) best = i;
    }
    if (best < 0) return new Uint8Array(bytes);
    const buffer = this.free[best]!;
    this.free[best] = this.free[this.free.length - 1]!;
    this.free.pop();
    return buffer.length === bytes ? buffer : buffer.subarray(0, bytes);
  }

  give(view: Uint8Array): void {
    const buffer = new Uint8Array(view.buffer);
    if (buffer.length > 0 && buffer.length <= SPARE_BYTES && this.free.length < SPARES) this.free.push(buffer);
  }
}
