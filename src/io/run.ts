/**
 * A whole `tsemu io` run: parse the open options (-f, -r, -U, -t/-n, --image-opts),
 * open the image through openImage(), run the -c commands in order (or, without
 * any, read commands from a line source, printing a prompt before each, until
 * "quit" or the end of input), close the image, and report whether any command
 * failed. Opening errors read like qemu-io's ("can't open device x: ...").
 * The line source is an iterator created before the image is opened, so no input
 * line arriving meanwhile is lost. A writable image whose format was probed as raw
 * gets QEMU's warning about it (the raw format itself guards block 0).
 */
import { closeImage, openImage } from '../block/open.js';
import { parseOptionString } from '../block/options.js';
import type { ImageNode } from '../block/formats/format.js';
import { IoSession, type IoOutput } from './commands.js';

export const IO_PROMPT = 'tsemu io> ';

const CACHE_MODES = ['none', 'writeback', 'writethrough', 'directsync', 'unsafe'] as const;

export interface IoRunOptions {
  filename: string;
  format?: string;
  readOnly?: boolean;
  forceShare?: boolean;
  /** -t: none, writeback, writethrough, directsync or unsafe. */
  cache?: string;
  /** --image-opts: `filename` is "driver=qcow2,file.filename=disk.qcow2". */
  imageOpts?: boolean;
  commands: readonly string[];
}

export class IoOpenError extends Error {}

interface OpenTarget {
  filename: string;
  format?: string;
}

/** --image-opts syntax: driver=FMT plus file.filename=PATH (or filename=PATH), file.driver=file. */
function parseImageOpts(text: string): OpenTarget {
  const opts = parseOptionString(text);
  const target: Partial<OpenTarget> = {};
  for (const [key, value] of opts) {
    if (key === 'driver') target.format = value;
    else if (key === 'file.filename' || key === 'filename') target.filename = value;
    else if (key === 'file.driver') {
      if (value !== 'file') throw new IoOpenError(`Unsupported protocol driver '${value}' (only 'file')`);
    } else throw new IoOpenError(`Unsupported image option '${key}'`);
  }
  if (!target.filename) throw new IoOpenError(`--image-opts '${text}' names no file.filename`);
  return target as OpenTarget;
}

export async function openForIo(opts: IoRunOptions): Promise<ImageNode> {
  if (opts.cache !== undefined && !(CACHE_MODES as readonly string[]).includes(opts.cache)) {
    throw new IoOpenError(`Invalid cache option: ${opts.cache}`);
  }
  if (opts.imageOpts && opts.format) throw new IoOpenError('--image-opts and -f are mutually exclusive');
  const target = opts.imageOpts ? parseImageOpts(opts.filename) : { filename: opts.filename, format: opts.format };
  try {
    return await openImage(target.filename, {
      format: target.format,
      readOnly: opts.readOnly ?? false,
      forceShare: opts.forceShare ?? false,
    });
  } catch (e) {
    throw new IoOpenError(`can't open device ${target.filename}: ${(e as Error).message}`);
  }
}

/**
 * Runs the commands (or the lines from `input` when there are no -c commands) and
 * resolves to true when every command succeeded.
 */
/** QEMU's warning when a writable image's format was probed as raw. */
function probedRawWarning(filename: string): string {
  return (
    `WARNING: Image format was not specified for '${filename}' and probing guessed raw.\n` +
    '         Automatically detecting the format is dangerous for raw images, write operations on block 0 will be restricted.\n' +
    "         Specify the 'raw' format explicitly to remove the restrictions."
  );
}

export async function runIo(opts: IoRunOptions, output: IoOutput, input?: AsyncIterator<string>): Promise<boolean> {
  const image = await openForIo(opts);
  if (!opts.format && !opts.imageOpts && !opts.readOnly && image.driver === 'raw') {
    output.err(probedRawWarning(opts.filename));
  }
  const session = new IoSession(image, output, {
    writeThrough: opts.cache === 'writethrough' || opts.cache === 'directsync',
  });
  try {
    if (opts.commands.length > 0) {
      for (const line of opts.commands) if ((await session.run(line)) === 'quit') break;
    } else if (input) {
      for (;;) {
        output.prompt?.(IO_PROMPT);
        const next = await input.next();
        if (next.done || (await session.run(next.value)) === 'quit') break;
      }
    }
  } finally {
    await closeImage(image);
  }
  return !session.failed;
}
