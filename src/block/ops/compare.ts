/**
 * `img compare`: do two images (each with its backing chain) show the same
 * content? Answers as qemu-img 7.2 does, with its exit codes: 0 identical,
 * 1 different, 2 an image could not be opened (3 a block status query failed,
 * 4 a read failed).
 *
 * Both chains are walked together over the common size, by runs where both chains'
 * block status is uniform (at most 2 MiB at a time): runs both know to be zero are
 * skipped; runs both allocate are read and compared 512-byte sector by sector; a
 * run only one side allocates must read as zeroes there. A difference is reported
 * at the first differing sector ("Content mismatch at offset N!"). Past the common
 * size, the larger image must read as zeroes wherever it allocates ("Warning:
 * Image size mismatch!" first). Strict mode (-s) instead fails on any size
 * difference and on any difference in block status (map's view of a run: present,
 * zero, data, stored at a host offset or not).
 */
import type { ImageNode } from '../formats/format.js';
import { closeImage, openImageReporting } from '../open.js';
import { chainBlockStatus, chainLayers, type ChainExtent } from './chain.js';
import { mapRun } from './map.js';

export interface CompareArgs {
  filename1: string;
  filename2: string;
  format1?: string;
  format2?: string;
  strict?: boolean;
  forceShare?: boolean;
  /** Called with the fraction done (0..1) as the walk advances (-p). */
  progress?: (fraction: number) => void;
}

export interface CompareResult {
  /** qemu-img's exit code. */
  code: 0 | 1 | 2 | 3 | 4;
  /** Lines for stdout (silenced by -q). */
  messages: string[];
  /** An error message for stderr, if the comparison could not be completed. */
  error?: string;
}

const SECTOR = 512;
const IO_BUF = 2 * 1024 * 1024;
const ZEROES = Buffer.alloc(IO_BUF);

class CompareStop extends Error {
  constructor(readonly code: 1 | 3 | 4, message: string, readonly toStdout: boolean) {
    super(message);
  }
}

export async function compareImages(a: CompareArgs): Promise<CompareResult> {
  const open = (filename: string, format?: string) =>
    openImageReporting(filename, { format, readOnly: true, forceShare: a.forceShare });
  let img1: ImageNode;
  try {
    img1 = await open(a.filename1, a.format1);
  } catch (e) {
    return { code: 2, messages: [], error: (e as Error).message };
  }
  let img2: ImageNode;
  try {
    img2 = await open(a.filename2, a.format2);
  } catch (e) {
    await closeImage(img1);
    return { code: 2, messages: [], error: (e as Error).message };
  }
  const messages: string[] = [];
  try {
    await walk(img1, img2, a, messages);
    messages.push('Images are identical.');
    return { code: 0, messages };
  } catch (e) {
    if (!(e instanceof CompareStop)) throw e;
    if (e.toStdout) return { code: e.code, messages: [...messages, e.message] };
    return { code: e.code, messages, error: e.message };
  } finally {
    await closeImage(img1);
    await closeImage(img2);
  }
}

function sectorSize(img: ImageNode): number {
  return Math.ceil(img.size() / SECTOR) * SECTOR;
}

async function walk(img1: ImageNode, img2: ImageNode, a: CompareArgs, messages: string[]): Promise<void> {
  const size1 = sectorSize(img1);
  const size2 = sectorSize(img2);
  const total = Math.min(size1, size2);
  const totalOver = Math.max(size1, size2);
  if (a.strict && size1 !== size2) throw new CompareStop(1, 'Strict mode: Image size mismatch!', true);
  const buf1 = new Uint8Array(IO_BUF);
  const buf2 = new Uint8Array(IO_BUF);
  const report = (offset: number) => a.progress?.(totalOver > 0 ? offset / totalOver : 1);

  for (let offset = 0; offset < total; ) {
    const st1 = await status(img1, a.filename1, offset, size1);
    const st2 = await status(img2, a.filename2, offset, size2);
    let chunk = Math.min(st1.length, st2.length, total - offset);
    if (a.strict && !(await sameStatus(img1, img2, offset, chunk))) {
      throw new CompareStop(1, `Strict mode: Offset ${offset} block status mismatch!`, true);
    }
    if (!(st1.zero && st2.zero)) {
      chunk = Math.min(chunk, IO_BUF);
      if (st1.allocated === st2.allocated) {
        if (st1.allocated) {
          const b1 = buf1.subarray(0, chunk);
          const b2 = buf2.subarray(0, chunk);
          await read(img1, a.filename1, offset, b1);
          await read(img2, a.filename2, offset, b2);
          const at = firstDifferentSector(b1, b2);
          if (at >= 0) throw new CompareStop(1, `Content mismatch at offset ${offset + at}!`, true);
        }
      } else if (st1.allocated) {
        await checkZero(img1, a.filename1, offset, buf1.subarray(0, chunk));
      } else {
        await checkZero(img2, a.filename2, offset, buf1.subarray(0, chunk));
      }
    }
    offset += chunk;
    report(offset);
  }

  if (size1 !== size2) {
    messages.push('Warning: Image size mismatch!');
    const [over, name] = size1 > size2 ? [img1, a.filename1] : [img2, a.filename2];
    for (let offset = total; offset < totalOver; ) {
      const st = await status(over, name, offset, totalOver);
      let chunk = st.length;
      if (st.allocated) {
        chunk = Math.min(chunk, IO_BUF);
        await checkZero(over, name, offset, buf1.subarray(0, chunk));
      }
      offset += chunk;
      report(offset);
    }
  }
}

/**
 * Chain status at `offset`. The rest of the image's last sector, past its end, reads
 * as zeroes: it extends a zero run that reaches the end, else it is a run of its own.
 */
async function status(img: ImageNode, filename: string, offset: number, sectorEnd: number): Promise<ChainExtent> {
  const size = img.size();
  if (offset >= size) return { offset, length: sectorEnd - offset, allocated: true, zero: true, depth: 0 };
  try {
    const st = await chainBlockStatus(img, offset, size - offset);
    return st.zero && offset + st.length === size ? { ...st, length: sectorEnd - offset } : st;
  } catch (e) {
    throw new CompareStop(3, `Sector allocation test failed for ${filename}: ${(e as Error).message}`, false);
  }
}

/**
 * Strict mode's test: both chains give the range the same status flags, as map
 * reports them (present, zero, data, and whether it has a host offset).
 */
async function sameStatus(img1: ImageNode, img2: ImageNode, offset: number, length: number): Promise<boolean> {
  const [e1, e2] = await Promise.all([
    mapRun(img1, chainLayers(img1), offset, length),
    mapRun(img2, chainLayers(img2), offset, length),
  ]);
  return (
    e1.present === e2.present && e1.zero === e2.zero && e1.data === e2.data &&
    (e1.offset === undefined) === (e2.offset === undefined)
  );
}

/** Reads `buf.length` bytes at `offset`; bytes past the image's end (inside its last sector) read as zero. */
async function read(img: ImageNode, filename: string, offset: number, buf: Uint8Array): Promise<void> {
  const inside = Math.max(0, Math.min(buf.length, img.size() - offset));
  try {
    await img.read(offset, buf.subarray(0, inside));
  } catch (e) {
    throw new CompareStop(4, `Error while reading offset ${offset} of ${filename}: ${(e as Error).message}`, false);
  }
  buf.fill(0, inside);
}

async function checkZero(img: ImageNode, filename: string, offset: number, buf: Uint8Array): Promise<void> {
  await read(img, filename, offset, buf);
  const at = firstNonZeroSector(buf);
  if (at >= 0) throw new CompareStop(1, `Content mismatch at offset ${offset + at}!`, true);
}

/** Start of the first 512-byte sector where the buffers differ, or -1. */
export function firstDifferentSector(a: Uint8Array, b: Uint8Array): number {
  const A = Buffer.from(a.buffer, a.byteOffset, a.length);
  const B = Buffer.from(b.buffer, b.byteOffset, b.length);
  if (A.equals(B)) return -1;
  for (let i = 0; i < a.length; i += SECTOR) {
    const end = Math.min(i + SECTOR, a.length);
    if (!A.subarray(i, end).equals(B.subarray(i, end))) return i;
  }
  return -1;
}

/** Start of the first 512-byte sector holding a non-zero byte, or -1. */
export function firstNonZeroSector(buf: Uint8Array): number {
  const B = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  if (buf.length <= IO_BUF && B.equals(ZEROES.subarray(0, buf.length))) return -1;
  for (let i = 0; i < buf.length; i += SECTOR) {
    const end = Math.min(i + SECTOR, buf.length);
    if (!B.subarray(i, end).equals(ZEROES.subarray(0, end - i))) return i;
  }
  return -1;
}
