/**
 * `img rebase`: changes the backing file an image's header names, as qemu-img
 * rebase does.
 *
 * Unsafe mode (-u) only rewrites the header. Safe mode keeps what the guest sees:
 * the image is opened writable on its old backing chain, the new backing file is
 * opened read-only, and for every range the image itself does not allocate the
 * old and new content are read and compared one cluster (the image's granularity)
 * at a time; clusters that differ are copied from the old chain into the image
 * (compressed with -c). Only then is the header changed, so an interrupted rebase
 * leaves the image valid on its old backing file. An empty name (-b "") rebases
 * onto nothing: every range the image leaves to its backing is then copied unless
 * it reads as zeroes. The header change itself is the format's setBackingFile hook
 * (formats without one cannot record a backing file: "Operation not supported").
 */
import { Buffer } from 'node:buffer';
import { stat } from 'node:fs/promises';
import type { BlockNode } from '../node.js';
import { closeImage, openImage, resolveBackingPath } from '../open.js';
import { CHUNK, alignUp } from './copy-engine.js';
import { openChain, type ChainImage } from './chain.js';

export interface RebaseArgs {
  filename: string;
  format?: string;
  /** -b: the new backing file name as the header will record it ('' = none). */
  backingFile: string;
  /** -F */
  backingFormat?: string;
  /** -u */
  unsafe?: boolean;
  /** -c: write copied clusters compressed. */
  compress?: boolean;
  /** -U: open the backing files without taking locks. */
  forceShare?: boolean;
  onProgress?: (done: number, total: number) => void;
}

const WORKERS = 4;

export async function rebaseImage(a: RebaseArgs): Promise<void> {
  const newName = a.backingFile === '' ? null : a.backingFile;
  if (newName !== null && a.backingFormat === undefined) {
    throw new Error(`Could not change the backing file to '${newName}': backing format must be specified`);
  }
  if (a.unsafe) {
    const img = (await openImage(a.filename, { format: a.format, backing: false })) as ChainImage;
    try {
      await changeBackingFile(img, newName, a.backingFormat ?? null);
    } finally {
      await closeImage(img);
    }
    return;
  }

  const { top } = await openChain(a.filename, { format: a.format, writableTop: true, forceShare: a.forceShare });
  let newBacking: BlockNode | null = null;
  try {
    if (top.backingFilename !== null && !top.backing) throw new Error('Could not open old backing file');
    if (a.compress && !top.writeCompressed) throw new Error('Compression not supported for this file format');
    if (newName !== null) {
      const newPath = resolveBackingPath(a.filename, newName);
      if (await sameFile(newPath, a.filename)) {
        throw new Error(
          `Could not open new backing file '${newName}': Failed to get shared "write" lock\nIs another process using the image [${newName}]?`,
        );
      }
      newBacking = await openImage(newPath, {
        format: a.backingFormat,
        readOnly: true,
        forceShare: a.forceShare,
      }).catch((e: Error) => {
        throw new Error(`Could not open new backing file '${newName}': ${e.message}`);
      });
    }
    await copyDifferences(top, top.backing, newBacking, Boolean(a.compress), a.onProgress);
    await top.flush();
    await changeBackingFile(top, newName, newName === null ? null : a.backingFormat!);
  } finally {
    if (newBacking) await closeImage(newBacking as ChainImage);
    await closeImage(top);
  }
}

/** Copies into `top` every cluster it leaves to its backing where `oldB` and `newB` differ. */
async function copyDifferences(
  top: ChainImage,
  oldB: BlockNode | null,
  newB: BlockNode | null,
  compress: boolean,
  onProgress?: (done: number, total: number) => void,
): Promise<void> {
  const size = top.size();
  const gran = Math.max(512, top.granularity);
  const chunk = alignUp(CHUNK, gran);
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    const oldBuf = Buffer.allocUnsafe(chunk);
    const newBuf = Buffer.allocUnsafe(chunk);
    while (next < size) {
      const start = next;
      const len = Math.min(chunk, size - start);
      next += len;
      for (let pos = start; pos < start + len; ) {
        const st = await top.blockStatus(pos, start + len - pos);
        if (!st.allocated) await mergeRange(top, oldB, newB, pos, st.length, oldBuf, newBuf, gran, compress);
        pos += st.length;
      }
      done += len;
      onProgress?.(done, size);
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, worker));
}

async function mergeRange(
  top: ChainImage,
  oldB: BlockNode | null,
  newB: BlockNode | null,
  offset: number,
  length: number,
  oldBuf: Buffer,
  newBuf: Buffer,
  gran: number,
  compress: boolean,
): Promise<void> {
  const o = oldBuf.subarray(0, length);
  const n = newBuf.subarray(0, length);
  await Promise.all([readOrZero(oldB, offset, o), readOrZero(newB, offset, n)]);
  if (o.equals(n)) return;
  // Walk granules (aligned to the image's clusters) and write each run that differs.
  let runStart = -1;
  const writes: Promise<void>[] = [];
  for (let p = 0; p <= length; ) {
    const end = Math.min(length, alignUp(offset + p + 1, gran) - offset);
    const differs = p < length && o.compare(n, p, end, p, end) !== 0;
    if (differs && runStart < 0) runStart = p;
    if (!differs && runStart >= 0) {
      writes.push(writeRun(top, offset + runStart, o.subarray(runStart, p), gran, compress));
      runStart = -1;
    }
    if (p === length) break;
    p = end;
  }
  await Promise.all(writes);
}

function writeRun(top: ChainImage, offset: number, data: Buffer, gran: number, compress: boolean): Promise<void> {
  const whole = offset % gran === 0 && (data.length % gran === 0 || offset + data.length === top.size());
  return compress && whole ? top.writeCompressed!(offset, data) : top.write(offset, data);
}

async function sameFile(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([stat(a).catch(() => null), stat(b).catch(() => null)]);
  return x !== null && y !== null && x.dev === y.dev && x.ino === y.ino;
}

/** Reads `buf.length` bytes at `offset` from `node`; past its end (or with no node) the bytes are zeroes. */
async function readOrZero(node: BlockNode | null, offset: number, buf: Buffer): Promise<void> {
  const avail = node ? Math.max(0, Math.min(buf.length, node.size() - offset)) : 0;
  if (avail > 0) await node!.read(offset, buf.subarray(0, avail));
  buf.fill(0, avail);
}

/** Records the new backing file through the format's hook, with qemu-img's message on failure. */
async function changeBackingFile(img: ChainImage, name: string | null, format: string | null): Promise<void> {
  const why = !img.setBackingFile
    ? 'Operation not supported'
    : await img.setBackingFile(name, format).then(() => null, (e: Error) => e.message);
  if (why !== null) throw new Error(`Could not change the backing file to '${name ?? ''}': ${why}`);
}
