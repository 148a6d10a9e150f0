/**
 * Out-of-order data a TCP receiver keeps until the hole before it is filled, so a
 * lost segment costs one retransmission instead of everything sent after it; its
 * ranges are what SACK blocks report (RFC 2018). Segments are copied in, kept
 * sorted by sequence number (duplicates dropped), and released in order by take()
 * once they continue the stream. At most `limit` bytes are kept; beyond that new
 * segments are dropped (the sender resends them). Sequence numbers wrap: every
 * comparison is relative to the stream position.
 */

interface Segment {
  seq: number;
  data: Uint8Array;
}

export class Reassembly {
  private readonly segments: Segment[] = [];
  private bytes = 0;

  constructor(private readonly limit: number) {}

  get empty(): boolean {
    return this.segments.length === 0;
  }

  /** Keeps a segment that starts beyond `next`, the next byte the stream expects. */
  add(next: number, seq: number, data: Uint8Array): void {
    if (data.length === 0 || this.bytes + data.length > this.limit) return;
    const at = (seq - next) | 0;
    let i = this.segments.length;
    while (i > 0 && ((this.segments[i - 1]!.seq - next) | 0) > at) i--;
    const before = this.segments[i - 1];
    if (before && before.seq === seq && before.data.length >= data.length) return;
    this.segments.splice(i, 0, { seq, data: data.slice() });
    this.bytes += data.length;
  }

  /** Removes and returns, in order, the kept bytes that continue the stream at `next`. */
  take(next: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    let position = next;
    while (this.segments.length > 0) {
      const s = this.segments[0]!;
      const overlap = (position - s.seq) | 0;
      if (overlap < 0) break;
      this.segments.shift();
      this.bytes -= s.data.length;
      if (overlap < s.data.length) {
        out.push(s.data.subarray(overlap));
        position = (position + s.data.length - overlap) >>> 0;
      }
    }
    return out;
  }

  /** Up to `max` [start, end) ranges held, merged, lowest first (for SACK blocks). */
  ranges(max: number): [number, number][] {
    const out: [number, number][] = [];
    for (const s of this.segments) {
      const end = (s.seq + s.data.length) >>> 0;
      const last = out[out.length - 1];
      if (last && ((s.seq - last[1]) | 0) <= 0) {
        if (((end - last[1]) | 0) > 0) last[1] = end;
      } else if (out.length === max) break;
      else out.push([s.seq, end]);
    }
    return out;
  }
}
