/**
 * `img bench`: a request-rate benchmark like qemu-img bench. It sends `count`
 * read (or, with write, write) requests of `bufferSize` bytes to an image,
 * keeping `depth` of them in flight. Request i goes to offset + i·step; when a
 * request would pass the end of the image the offsets start again at `offset`.
 * Writes carry the pattern byte; with a flush interval a flush is sent every
 * `flushInterval` requests (after waiting for the requests in flight unless
 * noDrain). The result is the wall time of the run, which the command prints as
 * "Run completed in N seconds.".
 */
import { Buffer } from 'node:buffer';
import { closeImage, openImage } from '../open.js';
import type { ImageNode } from '../formats/format.js';

export interface BenchArgs {
  filename: string;
  format?: string;
  count: number;
  depth: number;
  offset: number;
  bufferSize: number;
  /** Distance between request offsets (default bufferSize). */
  stepSize?: number;
  write: boolean;
  pattern: number;
  /** 0: never flush. */
  flushInterval: number;
  noDrain: boolean;
  forceShare?: boolean;
}

/** qemu-img bench's header lines for these arguments. */
export function benchHeader(a: BenchArgs): string[] {
  const lines = [
    `Sending ${a.count} ${a.write ? 'write' : 'read'} requests, ${a.bufferSize} bytes each, ${a.depth} in parallel ` +
      `(starting at offset ${a.offset}, step size ${a.stepSize ?? a.bufferSize})`,
  ];
  if (a.flushInterval > 0) lines.push(`Sending flush every ${a.flushInterval} requests`);
  return lines;
}

/** Runs the benchmark; returns the elapsed time in seconds. */
export async function runBench(a: BenchArgs): Promise<number> {
  if (a.flushInterval > 0 && !a.write) throw new Error('--flush-interval is only available in write tests');
  if (a.noDrain && a.flushInterval === 0) throw new Error('--no-drain requires --flush-interval');
  const img = await openImage(a.filename, {
    format: a.format,
    readOnly: !a.write,
    forceShare: a.forceShare && !a.write,
  });
  try {
    if (a.offset + a.bufferSize > img.size()) {
      throw new Error(`Offset ${a.offset} plus buffer size ${a.bufferSize} is past the end of '${a.filename}' (${img.size()} bytes)`);
    }
    const started = process.hrtime.bigint();
    await sendRequests(img, a);
    return Number(process.hrtime.bigint() - started) / 1e9;
  } finally {
    await closeImage(img);
  }
}

async function sendRequests(img: ImageNode, a: BenchArgs): Promise<void> {
  const step = a.stepSize ?? a.bufferSize;
  const size = img.size();
  let nextOffset = a.offset;
  let issued = 0;
  let completed = 0;
  let inFlight = 0;
  let failure: unknown = null;
  let drained: (() => void) | null = null;
  let flushing: Promise<void> | null = null;

  const takeOffset = (): number => {
    if (nextOffset + a.bufferSize > size) nextOffset = a.offset;
    const off = nextOffset;
    nextOffset += step;
    return off;
  };

  const lane = async (): Promise<void> => {
    const buf = Buffer.alloc(a.bufferSize, a.write ? a.pattern : 0);
    while (issued < a.count && failure === null) {
      if (flushing) await flushing;
      const off = takeOffset();
      issued++;
      inFlight++;
      try {
        if (a.write) await img.write(off, buf);
        else await img.read(off, buf);
      } finally {
        inFlight--;
        completed++;
        if (inFlight === 0 && drained) drained();
      }
      if (a.flushInterval > 0 && completed % a.flushInterval === 0 && !flushing) flushing = flushNow();
    }
  };

  const flushNow = async (): Promise<void> => {
    if (!a.noDrain && inFlight > 0) await new Promise<void>((r) => (drained = r));
    drained = null;
    await img.flush();
    flushing = null;
  };

  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(a.depth, a.count)) }, () =>
      lane().catch((e: unknown) => {
        failure ??= e;
      }),
    ),
  );
  if (flushing) await flushing;
  if (failure !== null) throw failure;
  if (a.write) await img.flush();
}
