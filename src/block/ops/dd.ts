/**
 * `img dd`: copies a byte range of an image into a new image, with dd-style
 * operands (bs=, count=, skip=, if=, of=), as qemu-img dd does.
 *
 * The output holds the input from skip·bs up to count·bs (or the input's end,
 * whichever is first): like qemu-img 7.2, `count` counts from the start of the
 * input, not from the skip point. The output is created (replacing any file of
 * that name) in the -O format with exactly that size, then filled by the copy
 * engine (zero blocks stay sparse); it is removed again if the copy fails.
 */
import { rm } from 'node:fs/promises';
import { closeImage, openImage } from '../open.js';
import { parseSize } from '../options.js';
import { createImage } from './create.js';
import { copySegments } from './copy-engine.js';
import { assertNotInChains } from './chain.js';

export interface DdArgs {
  /** The operands as given ("bs=1M", "if=in.img", …). */
  operands: readonly string[];
  /** -f */
  format?: string;
  /** -O (default raw) */
  outputFormat?: string;
  /** -U */
  forceShare?: boolean;
}

interface DdOperands {
  input: string;
  output: string;
  bs: number;
  count: number | null;
  skip: number;
}

export function parseDdOperands(operands: readonly string[]): DdOperands {
  let input: string | undefined;
  let output: string | undefined;
  let bs = 512;
  let count: number | null = null;
  let skip = 0;
  for (const op of operands) {
    const eq = op.indexOf('=');
    const key = eq < 0 ? op : op.slice(0, eq);
    const value = eq < 0 ? '' : op.slice(eq + 1);
    switch (key) {
      case 'if': input = value; break;
      case 'of': output = value; break;
      case 'bs': {
        const n = tryParseSize(value);
        if (n === null || n < 1 || n > 2 ** 31 - 1) throw new Error('Invalid bs specified. Must be between 1 and 2147483647.');
        bs = n;
        break;
      }
      case 'count': count = blocks(value, 'count'); break;
      case 'skip': skip = blocks(value, 'skip'); break;
      default: throw new Error(`unrecognized operand ${op}`);
    }
  }
  if (!input || !output) throw new Error('Must specify both input and output files');
  return { input, output, bs, count, skip };
}

function blocks(value: string, what: string): number {
  const n = tryParseSize(value);
  if (n === null) throw new Error(`invalid number: '${value}' (${what}=)`);
  return n;
}

function tryParseSize(value: string): number | null {
  try {
    return parseSize(value);
  } catch {
    return null;
  }
}

export async function ddImage(a: DdArgs): Promise<void> {
  const op = parseDdOperands(a.operands);
  const outFormat = a.outputFormat ?? 'raw';
  const src = await openImage(op.input, { format: a.format, readOnly: true, forceShare: a.forceShare });
  try {
    const inSize = src.size();
    const end = op.count !== null && op.count * op.bs <= inSize ? op.count * op.bs : inSize;
    const start = op.skip * op.bs;
    if (start > end) throw new Error(`${op.input}: cannot skip to specified offset`);
    const length = end - start;
    await assertNotInChains(op.output, [src], outFormat);
    await createImage({ filename: op.output, format: outFormat, size: String(length), options: [] });
    try {
      const out = await openImage(op.output, { format: outFormat });
      try {
        await copySegments({
          target: out,
          segments: [{ source: src, base: null, sourceOffset: start, targetOffset: 0, length }],
          skipUnallocated: false,
          sparseSize: 4096,
          targetIsZero: true,
          compress: false,
          inFlight: 8,
          outOfOrder: false,
          rateLimit: 0,
        });
        await out.flush();
      } finally {
        await closeImage(out);
      }
    } catch (e) {
      await rm(op.output, { force: true });
      throw e;
    }
  } finally {
    await closeImage(src);
  }
}
