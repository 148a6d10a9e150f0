/**
 * Readahead for a remote resource read with range requests: each fetch asks for
 * at least `readahead` bytes (clipped to the end), and the fetched chunks stay in
 * a small cache (MAX_CHUNKS, least recently used dropped first) so the reads that
 * follow are served without a round trip. A read that falls in a chunk still on
 * its way waits for that fetch instead of asking again, so the many small
 * parallel reads of a format driver or of convert turn into few requests. A fetch
 * stops short of the next cached chunk, so chunks do not overlap. A failed fetch
 * leaves the cache: the next read asks again.
 */

/** Fills `buf` with the resource's bytes from `offset` (the whole of `buf`, or throws). */
export type RangeFetcher = (offset: number, buf: Uint8Array) => Promise<void>;

interface Chunk {
  start: number;
  end: number;
  data: Promise<Uint8Array>;
  lastUse: number;
}

const MAX_CHUNKS = 16;

export class ReadaheadCache {
  private chunks: Chunk[] = [];
  private clock = 0;

  constructor(
    private readonly size: number,
    private readonly readahead: number,
    private readonly fetch: RangeFetcher,
  ) {}

  /** Reads [offset, offset + buf.length), which must lie inside the resource. */
  async read(offset: number, buf: Uint8Array): Promise<void> {
    const end = offset + buf.length;
    let pos = offset;
    while (pos < end) {
      const chunk = this.find(pos) ?? this.fetchChunk(pos, end);
      chunk.lastUse = ++this.clock;
      const data = await chunk.data;
      const upTo = Math.min(end, chunk.end);
      buf.set(data.subarray(pos - chunk.start, upTo - chunk.start), pos - offset);
      pos = upTo;
    }
  }

  private find(pos: number): Chunk | undefined {
    return this.chunks.find((c) => c.start <= pos && pos < c.end);
  }

  private fetchChunk(pos: number, wantedEnd: number): Chunk {
    const nextStart = Math.min(...this.chunks.filter((c) => c.start > pos).map((c) => c.start), this.size);
    const end = Math.min(Math.max(wantedEnd, pos + this.readahead), nextStart);
    const buf = new Uint8Array(end - pos);
    const chunk: Chunk = { start: pos, end, data: this.fetch(pos, buf).then(() => buf), lastUse: ++this.clock };
    chunk.data.catch(() => {
      this.chunks = this.chunks.filter((c) => c !== chunk);
    });
    this.chunks.push(chunk);
    if (this.chunks.length > MAX_CHUNKS) {
      const oldest = this.chunks.reduce((a, b) => (b.lastUse < a.lastUse ? b : a));
      this.chunks = this.chunks.filter((c) => c !== oldest);
    }
    return chunk;
  }
}
