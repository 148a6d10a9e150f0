import { Args, Flags } from '@oclif/core';
import { TsemuCommand } from '../base.js';
import { defineObjects, objectFlag } from '../../cli/objects.js';
import { benchHeader, runBench } from '../../block/ops/bench.js';
import { parseCacheMode } from '../../block/ops/copy-args.js';
import { parseSize } from '../../block/options.js';

export default class ImgBench extends TsemuCommand {
  static override summary = 'Measure the request rate of an image';
  static override description =
    'Send COUNT read (or -w write) requests of BUFFER_SIZE bytes, DEPTH in parallel, starting at OFFSET and ' +
    'STEP_SIZE apart, and print the run time.';
  static override usage =
    'img bench [--object OBJECTDEF] [-c COUNT] [-d DEPTH] [-f FMT] [--flush-interval=FLUSH_INTERVAL] [-i AIO] [-n] [--no-drain] ' +
    '[-o OFFSET] [--pattern=PATTERN] [-q] [-s BUFFER_SIZE] [-S STEP_SIZE] [-t CACHE] [-U] [-w] FILENAME';
  static override flags = {
    object: objectFlag,
    count: Flags.string({ char: 'c', description: 'number of requests (default 75000)' }),
    depth: Flags.string({ char: 'd', description: 'requests in flight (default 64)' }),
    format: Flags.string({ char: 'f', description: 'image format (probed when absent)' }),
    'flush-interval': Flags.string({ description: 'flush every N requests (write tests)' }),
    aio: Flags.string({ char: 'i', description: 'AIO mode: threads, native or io_uring (all run on the thread pool)' }),
    native: Flags.boolean({ char: 'n', description: 'native AIO (runs on the thread pool)' }),
    'no-drain': Flags.boolean({ description: 'do not wait for requests in flight before a flush' }),
    offset: Flags.string({ char: 'o', description: 'offset of the first request' }),
    pattern: Flags.string({ description: 'byte written by write requests (default 0)' }),
    quiet: Flags.boolean({ char: 'q', description: 'quiet mode' }),
    'buffer-size': Flags.string({ char: 's', description: 'request size (default 4k)' }),
    'step-size': Flags.string({ char: 'S', description: 'distance between request offsets (default: the request size)' }),
    cache: Flags.string({ char: 't', description: 'cache mode' }),
    'force-share': Flags.boolean({ char: 'U', description: 'open without taking locks' }),
    write: Flags.boolean({ char: 'w', description: 'write test' }),
  };
  static override args = {
    filename: Args.string({ description: 'image', required: true }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ImgBench);
    defineObjects(flags.object);
    parseCacheMode(flags.cache, 'cache', 'writethrough');
    if (flags.aio !== undefined && !['threads', 'native', 'io_uring'].includes(flags.aio)) {
      throw new Error(`Invalid aio option: ${flags.aio}`);
    }
    const bufferSize = sizeArg(flags['buffer-size'], 4096, 'buffer size', 1);
    const bench = {
      filename: args.filename,
      format: flags.format,
      count: intArg(flags.count, 75000, 'request count', 1),
      depth: intArg(flags.depth, 64, 'queue depth', 1),
      offset: sizeArg(flags.offset, 0, 'offset', 0, Number.MAX_SAFE_INTEGER),
      bufferSize,
      stepSize: sizeArg(flags['step-size'], bufferSize, 'step size', 0),
      write: flags.write,
      pattern: intArg(flags.pattern, 0, 'pattern byte', 0, 255),
      flushInterval: intArg(flags['flush-interval'], 0, 'flush interval', 0),
      noDrain: flags['no-drain'],
      forceShare: flags['force-share'],
    };
    if (!flags.quiet) for (const line of benchHeader(bench)) this.out(line);
    const seconds = await runBench(bench);
    if (!flags.quiet) this.out(`Run completed in ${seconds.toFixed(3)} seconds.`);
  }
}

function intArg(text: string | undefined, fallback: number, what: string, min: number, max = 2 ** 31 - 1): number {
  if (text === undefined) return fallback;
  const n = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max)) throw new Error(`Invalid ${what} specified`);
  return n;
}

function sizeArg(text: string | undefined, fallback: number, what: string, min: number, max = 2 ** 31 - 1): number {
  if (text === undefined) return fallback;
  let n: number;
  try {
    n = parseSize(text, what);
  } catch {
    throw new Error(`Invalid ${what} specified`);
  }
  if (n < min || n > max) throw new Error(`Invalid ${what} specified`);
  return n;
}
