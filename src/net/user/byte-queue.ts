/**
 * A FIFO of bytes kept as the chunks they arrived in (no copying on push): the TCP
 * send queue, holding the bytes from the oldest unacknowledged one on. copyOut()
 * reads any range by offset (for sending and resending segments); drop() releases
 * bytes from the front once they are acknowledged.
 */
export class ByteQueue {
  private readonly chunks: Uint8Array[] = [];
  /** Bytes of chunks[0] already dropped. */
  private headOffset = 0;
  length = 0;

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** Copies `count` bytes starting `offset` bytes into the queue to dst[at…]. */
  copyOut(offset: number, count: number, dst: Uint8Array, at: number): void {
    let skip = offset + this.headOffset;
    let i = 0;
    while (i < this.chunks.length && skip >= this.chunks[i]!.length) skip -= this.chunks[i++]!.length;
    let left = count;
    while (left > 0 && i < this.chunks.length) {
      const chunk = this.chunks[i++]!;
      const n = Math.min(left, chunk.length - skip);
      dst.set(chunk.subarray(skip, skip + n), at);
      at += n;
      left -= n;
      skip = 0;
    }
  }

  drop(count: number): void {
    let left = Math.min(count, this.length);
    this.length -= left;
    while (left > 0) {
      const rest = this.chunks[0]!.length - this.headOffset;
      if (left < rest) {
        this.headOffset += left;
        return;
      }
      left -= rest;
      this.chunks.shift();
      this.headOffset = 0;
    }
  }
}
