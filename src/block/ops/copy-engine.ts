/**
 * The copy engine under convert, commit, rebase and dd: it copies byte ranges
 * ("segments") of source nodes into one target node, reading only what the
 * source's chain block status says holds data, and writing zeroes (or nothing)
 * for the rest.
 *
 * Theory of operation. A planner walks the segments in order and cuts them into
 * chunks of at most CHUNK bytes whose ends fall on CHUNK boundaries of the target,
 * one kind per chunk:
 *   - skip: not allocated above the segment's `base`, and the caller said the
 *     target already provides such ranges (its backing file / the commit base);
 *   - zero: known to read as zeroes;
 *   - data: read and copy; known-zero ranges that follow data in the same chunk
 *     are folded into it and remembered (one large request beats many small
 *     ones; the zero scan treats them as zero without looking).
 * Boundaries inside a target granule (cluster) are moved to the granule edge so
 * writes never straddle half a cluster (a data chunk grows, a zero/skip chunk
 * shrinks). `inFlight` workers take chunks from the planner; each owns one
 * buffer, reads its chunk's data parts (gaps shorter than MERGE_GAP read along,
 * longer ones skipped; all parts in one readRuns request where the source offers
 * it, so a qcow2 source reads parts stored one after another at once), and when `sparseSize` > 0 scans it for zero runs with
 * native compares at `unit` granularity (max(target granule, sparseSize)): zero
 * runs become writeZeroes, or nothing when the target already reads as zeroes.
 * Writes are issued in chunk order (a chunk's data runs in one writeRuns request
 * where the target offers it) unless `outOfOrder` (requests still overlap:
 * a chunk waits only until the previous one has *issued* its writes, which keeps
 * allocation order sequential while reads, compression and writes run in
 * parallel). With compression the chunk buffers are SharedArrayBuffers, which
 * the compression workers read in place. A buffer is reused only after its
 * chunk's writes, compression included, have settled. The first error stops the
 * workers and is rethrown.
 * `sparseSize` = 0 writes every byte (fully allocated target).
 */
import { Buffer } from 'node:buffer';
import { type BlockNode, settleAll } from '../node.js';
import { chainBlockStatus } from './chain.js';

/** Largest request, and the grid chunks are aligned to in the target. */
export const CHUNK = 2 * 1024 * 1024;

export interface CopySegment {
  source: BlockNode;
  /** Block status is taken over the source's chain above this node (null: the whole chain). */
  base: BlockNode | null;
  sourceOffset: number;
  targetOffset: number;
  length: number;
}

export interface CopyOptions {
  target: BlockNode;
  segments: readonly CopySegment[];
  /** Ranges not allocated above `base` are left alone (the target already shows them). */
  skipUnallocated: boolean;
  /** Zero runs shorter than this are written as data; 0 disables zero detection entirely. */
  sparseSize: number;
  /** The target reads as zeroes wherever nothing is written. */
  targetIsZero: boolean;
  /** Write data through the target's writeCompressed. */
  compress: boolean;
  /** Number of chunks being worked on at once (qemu-img -m). */
  inFlight: number;
  /** Allow writes to be issued in any order (qemu-img -W). */
  outOfOrder: boolean;
  /** Bytes per second, 0 for no limit (qemu-img -r). */
  rateLimit: number;
  /** Replace unreadable 512-byte sectors with zeroes instead of failing (qemu-img --salvage). */
  salvage?: (offset: number, error: Error) => void;
  onProgress?: (done: number, total: number) => void;
}

type ChunkKind = 'data' | 'zero' | 'skip';

interface Part {
  start: number;
  end: number;
}

interface Chunk {
  kind: ChunkKind;
  seg: CopySegment;
  /** Offset inside the segment. */
  pos: number;
  length: number;
  /** Data chunks: the ranges (relative to the chunk) known to read as zeroes, which need no read. */
  zeroParts: Part[];
  /** Resolves once the previous chunk has issued its writes. */
  turn: Promise<void>;
  issued: () => void;
}

/** Copies the segments into the target; resolves when every write has completed. */
export async function copySegments(o: CopyOptions): Promise<void> {
  if (o.compress && !o.target.writeCompressed) {
    throw new Error('Compression not supported for this file format');
  }
  const gran = Math.max(1, o.target.granularity);
  const unit = Math.max(gran, o.sparseSize);
  const chunkSize = Math.ceil(CHUNK / unit) * unit;
  const total = o.segments.reduce((n, s) => n + s.length, 0);
  const throttle = makeThrottle(o.rateLimit);
  const zeroes = Buffer.alloc(chunkSize);
  const chunks = planChunks(o, gran, chunkSize);
  let done = 0;
  let failure: unknown = null;

  const worker = async (): Promise<void> => {
    // Compressing: shared memory, so the codec workers read the chunk where it is.
    const buf = o.compress ? Buffer.from(new SharedArrayBuffer(chunkSize)) : Buffer.allocUnsafe(chunkSize);
    for (;;) {
      if (failure !== null) return;
      const next = await chunks.next();
      if (next.done) return;
      const c = next.value;
      try {
        await copyChunk(c, buf);
      } finally {
        // A chunk that wrote nothing (skipped, or zeroes on a zeroed target) still
        // passes the turn only after the chunk before it, so later writes keep order.
        if (o.outOfOrder) c.issued();
        else void c.turn.then(c.issued);
      }
      done += c.length;
      o.onProgress?.(done, total);
    }
  };

  const copyChunk = async (c: Chunk, buf: Buffer): Promise<void> => {
    const t = c.seg.targetOffset + c.pos;
    if (c.kind === 'skip') return;
    if (c.kind === 'zero' && o.sparseSize > 0) {
      if (o.targetIsZero) return;
      await myTurn(c);
      if (throttle) await throttle(c.length);
      const zeroing = o.target.writeZeroes(t, c.length, { mayUnmap: o.target.backing === null });
      c.issued();
      await zeroing;
      return;
    }
    const data = buf.subarray(0, c.length);
    if (c.kind === 'zero') data.fill(0);
    else await readDataParts(c, data);
    const runs = o.sparseSize > 0 ? zeroRuns(data, t, unit, zeroes, c.zeroParts) : [{ start: 0, end: c.length, zero: false }];
    await myTurn(c);
    if (throttle) await throttle(c.length);
    const writes: Promise<void>[] = [];
    const plain: Array<{ offset: number; buf: Buffer }> = [];
    for (const r of runs) {
      const off = t + r.start;
      const len = r.end - r.start;
      if (r.zero) {
        if (!o.targetIsZero) writes.push(o.target.writeZeroes(off, len, { mayUnmap: o.target.backing === null }));
      } else if (o.compress && off % gran === 0 && (len % gran === 0 || off + len === o.target.size())) {
        writes.push(o.target.writeCompressed!(off, data.subarray(r.start, r.end)));
      } else {
        plain.push({ offset: off, buf: data.subarray(r.start, r.end) });
      }
    }
    // The chunk's data runs in one request where the target takes several at once.
    if (plain.length > 1 && o.target.writeRuns) writes.push(o.target.writeRuns(plain));
    else for (const p of plain) writes.push(o.target.write(p.offset, p.buf));
    c.issued();
    await settleAll(writes);
  };

  const myTurn = async (c: Chunk): Promise<void> => {
    if (!o.outOfOrder) await c.turn;
  };

  /**
   * Reads a data chunk's data parts, all requests at once. Known-zero gaps shorter
   * than MERGE_GAP are read with their neighbours (a request costs more than
   * copying that much); longer ones are not read at all, which halves what the
   * kernel copies for a source of short data runs between holes. Bytes of a gap
   * that is not read are zeroed when they can end up written as data: all of them
   * without zero detection, else only those in scan units that also hold data
   * (whole units in a known-zero range become zero runs without being looked at).
   */
  const readDataParts = async (c: Chunk, data: Buffer): Promise<void> => {
    const reads = mergeSmallGaps(complement(c.zeroParts, c.length));
    const t = c.seg.targetOffset + c.pos;
    for (const { start, end } of complement(reads, c.length)) {
      if (o.sparseSize === 0) {
        data.fill(0, start, end);
        continue;
      }
      const headEnd = Math.min(end, alignUp(t + start, unit) - t);
      const tailStart = Math.max(headEnd, alignDown(t + end, unit) - t);
      data.fill(0, start, headEnd);
      data.fill(0, tailStart, end);
    }
    const base = c.seg.sourceOffset + c.pos;
    const src = c.seg.source;
    // Several parts in one request where the source can join them (--salvage reads them one by one).
    if (reads.length > 1 && src.readRuns && !o.salvage) {
      await src.readRuns(reads.map((r) => ({ offset: base + r.start, buf: data.subarray(r.start, r.end) })));
    } else {
      await settleAll(reads.map((r) => readSource(src, base + r.start, data.subarray(r.start, r.end))));
    }
  };

  const readSource = async (src: BlockNode, off: number, data: Buffer): Promise<void> => {
    try {
      await src.read(off, data);
    } catch (e) {
      if (!o.salvage) throw e;
      for (let p = 0; p < data.length; p += 512) {
        const piece = data.subarray(p, Math.min(data.length, p + 512));
        await src.read(off + p, piece).catch((err: Error) => {
          o.salvage!(off + p, err);
          piece.fill(0);
        });
      }
    }
  };

  const workers = Array.from({ length: Math.max(1, o.inFlight) }, () =>
    worker().catch((e: unknown) => {
      failure ??= e;
    }),
  );
  await Promise.all(workers);
  if (failure !== null) throw failure;
}

async function* planChunks(o: CopyOptions, gran: number, chunkSize: number): AsyncGenerator<Chunk> {
  let prevIssued: Promise<void> = Promise.resolve();
  for (const seg of o.segments) {
    let pos = 0;
    while (pos < seg.length) {
      const t = seg.targetOffset + pos;
      const limit = Math.min(seg.length - pos, alignUp(t + 1, chunkSize) - t);
      let kind: ChunkKind | null = null;
      let len = 0;
      const zeroParts: Part[] = [];
      while (len < limit) {
        const st = await chainBlockStatus(seg.source, seg.sourceOffset + pos + len, limit - len, seg.base, true);
        const k: ChunkKind = !st.allocated && o.skipUnallocated ? 'skip' : st.zero ? 'zero' : 'data';
        if (kind === null) kind = k;
        else if (!(k === kind || (kind === 'data' && k === 'zero'))) break;
        if (kind === 'data' && k === 'zero') zeroParts.push({ start: len, end: len + st.length });
        len += st.length;
      }
      len = alignToGranule(kind!, t, len, limit, gran);
      if (len === 0) {
        kind = 'data';
        len = Math.min(limit, alignUp(t + 1, gran) - t);
      }
      clipParts(zeroParts, len);
      let issued!: () => void;
      const next = new Promise<void>((resolve) => (issued = resolve));
      yield { kind: kind!, seg, pos, length: len, zeroParts, turn: prevIssued, issued };
      prevIssued = next;
      pos += len;
    }
  }
}

/** Drops the parts of `parts` at or past `len` (the chunk was cut short). */
function clipParts(parts: Part[], len: number): void {
  while (parts.length && parts[parts.length - 1]!.start >= len) parts.pop();
  const last = parts[parts.length - 1];
  if (last && last.end > len) last.end = len;
}

/** Moves a chunk's end off the middle of a target granule: data grows to its edge, zero/skip shrink. */
function alignToGranule(kind: ChunkKind, t: number, len: number, limit: number, gran: number): number {
  const end = t + len;
  if (len >= limit || end % gran === 0) return len;
  if (kind === 'data') return Math.min(limit, alignUp(end, gran) - t);
  return Math.max(0, alignDown(end, gran) - t);
}

interface Run {
  start: number;
  end: number;
  zero: boolean;
}

/** Known-zero gaps shorter than this are read with the data around them. */
const MERGE_GAP = 128 * 1024;

/** `parts` (sorted, disjoint) with gaps shorter than MERGE_GAP closed. */
function mergeSmallGaps(parts: readonly Part[]): Part[] {
  const out: Part[] = [];
  for (const p of parts) {
    const last = out[out.length - 1];
    if (last && p.start - last.end < MERGE_GAP) last.end = p.end;
    else out.push({ ...p });
  }
  return out;
}

/** The ranges of [0, length) that `parts` (sorted, disjoint) leave uncovered. */
function complement(parts: readonly Part[], length: number): Part[] {
  const gaps: Part[] = [];
  let at = 0;
  for (const p of [...parts, { start: length, end: length }]) {
    if (p.start > at) gaps.push({ start: at, end: p.start });
    at = p.end;
  }
  return gaps;
}

/**
 * Splits `data` (at target offset `t`) into zero and non-zero runs on `unit`
 * boundaries of the target, so zero runs always cover whole units. A unit inside
 * one of `known` (sorted ranges already known to be zero) is zero without a look.
 * Cost: a data unit is almost always told apart by its first or last byte (a
 * tight loop over the following units, no native call); once a unit is zero,
 * ever longer stretches after it are compared at once (doubling while they stay
 * zero, halving when not), so a zero run costs a few native compares, not one
 * per unit, and every byte is looked at most once.
 */
export function zeroRuns(data: Buffer, t: number, unit: number, zeroes: Buffer, known: readonly Part[] = []): Run[] {
  const isZero = (s: number, e: number): boolean =>
    data[s] === 0 && data[e - 1] === 0 && data.compare(zeroes, 0, e - s, s, e) === 0;
  const n = data.length;
  const runs: Run[] = [];
  let k = 0;
  let start = 0;
  while (start < n) {
    let end = Math.min(n, alignUp(t + start + 1, unit) - t);
    while (k < known.length && known[k]!.end <= start) k++;
    const part = known[k];
    let zero: boolean;
    if (part !== undefined && part.start <= start && part.end >= end) {
      zero = true;
      end = part.end >= n ? n : Math.max(end, alignDown(t + part.end, unit) - t);
    } else {
      zero = isZero(start, end);
      // Known parts are not guaranteed to hold zero bytes: stretches stop before the next one.
      const limit = part === undefined ? n : Math.max(end, alignDown(t + part.start, unit) - t);
      if (!zero) {
        // Whole units from here on: those with a non-zero first or last byte are data
        // (then a unit cut short by `limit`, the same way).
        while (end + unit <= limit && (data[end] !== 0 || data[end + unit - 1] !== 0)) end += unit;
        if (end < limit && end + unit > limit && (data[end] !== 0 || data[limit - 1] !== 0)) end = limit;
      }
      for (let step = unit; zero && end < limit;) {
        const to = Math.min(limit, end + step);
        if (isZero(end, to)) {
          end = to;
          step *= 2;
        } else if (step > unit) step /= 2;
        else break;
      }
    }
    const last = runs[runs.length - 1];
    if (last && last.zero === zero) last.end = end;
    else runs.push({ start, end, zero });
    start = end;
  }
  return runs;
}

/** Null without a limit (nothing to wait for). */
function makeThrottle(bytesPerSecond: number): ((n: number) => Promise<void>) | null {
  if (bytesPerSecond <= 0) return null;
  const start = Date.now();
  let sent = 0;
  return async (n: number) => {
    const due = start + (sent / bytesPerSecond) * 1000;
    sent += n;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  };
}

export function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

export function alignDown(n: number, a: number): number {
  return Math.floor(n / a) * a;
}
