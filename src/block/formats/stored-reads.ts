/**
 * Reading a format's stored bytes from its file, without reading the file's holes.
 *
 * A format maps a request onto pieces of its file ("host pieces": a file offset
 * and the part of the caller's buffer that reads from there). readStored reads
 * them. Bytes past the end of the file read as zeroes (a stored block's tail
 * that a shorter file does not hold). On a host file, holes (SEEK_DATA and
 * SEEK_HOLE, through the file's blockStatus) are filled with zeroes instead of
 * read: the kernel would zero page-cache pages for them and copy those, and an
 * image that tools wrote sparse is often half holes. The stretches of data left
 * are read at once, as one readRuns request where the file offers it (stretches
 * that follow each other in the file become one preadv).
 *
 * Limits: holes are asked of the file protocol only (an NBD or HTTP file would
 * pay a round trip per question, or knows of no holes anyway), and only for
 * pieces of at least HOLE_QUERY_MIN bytes (for a small read, the two system
 * calls of the question cost more than reading a hole would). A hole that a
 * write in flight is filling may read as zeroes, as a read racing a write may
 * read the old bytes anyway; a read issued after the write completed sees it.
 *
 * readMapped serves a format's read() and readRuns() alike: it checks each range,
 * has the format map it onto host pieces (zero-filling what is not stored), then
 * reads all the pieces with one readStored.
 */
import { checkRange, readRunsOf } from '../node.js';
import type { ProtocolNode } from '../protocols/protocol.js';

/** Pieces shorter than this are read whole, holes and all. */
const HOLE_QUERY_MIN = 64 * 1024;

export interface HostPiece {
  offset: number;
  buf: Uint8Array;
}

/** Reads each piece's bytes from `file` (see the header comment). */
export async function readStored(file: ProtocolNode, pieces: readonly HostPiece[]): Promise<void> {
  const size = file.size();
  const askHoles = file.driver === 'file';
  const data: HostPiece[] = [];
  for (const p of pieces) {
    const inFile = Math.max(0, Math.min(p.buf.length, size - p.offset));
    if (inFile < p.buf.length) p.buf.fill(0, inFile);
    if (!askHoles || inFile < HOLE_QUERY_MIN) {
      if (inFile > 0) data.push(inFile === p.buf.length ? p : { offset: p.offset, buf: p.buf.subarray(0, inFile) });
      continue;
    }
    for (let at = 0; at < inFile;) {
      const st = await file.blockStatus(p.offset + at, inFile - at);
      const n = st.length > 0 ? st.length : inFile - at;
      const part = p.buf.subarray(at, at + n);
      if (st.zero && st.length > 0) part.fill(0);
      else data.push({ offset: p.offset + at, buf: part });
      at += n;
    }
  }
  if (data.length === 1) return file.read(data[0]!.offset, data[0]!.buf);
  if (data.length === 0) return;
  return readRunsOf(file, data);
}

/** Maps each range onto host pieces with `map` (which zero-fills what is not stored) and reads them at once. */
export async function readMapped(
  node: { filename: string; size(): number },
  file: ProtocolNode,
  runs: ReadonlyArray<{ offset: number; buf: Uint8Array }>,
  map: (offset: number, buf: Uint8Array, host: HostPiece[]) => void,
): Promise<void> {
  for (const r of runs) checkRange(node, node.size(), r.offset, r.buf.length);
  const host: HostPiece[] = [];
  for (const r of runs) map(r.offset, r.buf, host);
  await readStored(file, host);
}
