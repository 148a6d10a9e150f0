/**
 * A FIFO of bytes in one growable ring buffer: the TCP send queue, holding the
 * bytes from the oldest unacknowledged one on. push() copies a chunk in (so a
 * caller may hand a view of a buffer it reuses, such as a socket's onread
 * buffer); copyOut() reads any range by offset (for sending and resending
 * segments); drop() releases bytes from the front once they are acknowledged.
 * The ring starts empty and doubles when a push needs more room (it never shrinks,
 * so an idle connection costs nothing and a busy one settles at the power of two
 * above its peak).
 */
const FIRST_CAPACITY = 16 << 10;

export class ByteQueue {
  private ring = new Uint8Array(0);
  /** Index of the first byte in the ring. */
  private head = 0;
  length = 0;

  push(chunk: Uint8Array): void {
    const count = chunk.length;
    if (count === 0) return;
    if (this.length + count > this.ring.length) this.grow(this.length + count);
    const capacity = this.ring.length;
    let tail = this.head + this.length;
    if (tail >= capacity) tail -= capacity;
    const first = Math.min(count, capacity - tail);
    this.ring.set(first === count ? chunk : chunk.subarray(0, first), tail);
    if (first < count) this.ring.set(chunk.subarray(first), 0);
    this.length += count;
  }

  /** Copies `count` bytes starting `offset` bytes into the queue to dst[at…]. */
  copyOut(offset: number, count: number, dst: Uint8Array, at: number): void {
    const capacity = this.ring.length;
    let start = this.head + offset;
    if (start >= capacity) start -= capacity;
    const first = Math.min(count, capacity - start);
    dst.set(this.ring.subarray(start, start + first), at);
    if (first < count) dst.set(this.ring.subarray(0, count - first), at + first);
  }

  drop(count: number): void {
    const n = Math.min(count, this.length);
    this.length -= n;
    this.head = this.length === 0 ? 0 : (this.head + n) % this.ring.length;
  }

  private grow(needed: number): void {
    let capacity = Math.max(this.ring.length * 2, FIRST_CAPACITY);
    while (capacity < needed) capacity *= 2;
    const next = new Uint8Array(capacity);
    if (this.length > 0) this.copyOut(0, this.length, next, 0);
    this.ring = next;
    this.head = 0;
  }
}
