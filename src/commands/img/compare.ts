import { Args, Flags } from '@oclif/core';
import { defineObjects, objectFlag } from '../../cli/objects.js';
import { TsemuCommand, UserError } from '../base.js';
import { compareImages } from '../../block/ops/compare.js';
import { ProgressBar } from '../../cli/progress.js';

const CACHE_MODES = ['none', 'writeback', 'writethrough', 'directsync', 'unsafe'];

export default class ImgCompare extends TsemuCommand {
  static override summary = 'Check whether two images show the same content';
  static override description =
    'Compare the content of FILENAME1 and FILENAME2 (each with its backing chain), as qemu-img compare ' +
    'does. Exit code 0: identical, 1: different, 2: an image could not be opened. Images of different ' +
    'sizes are identical when the extra part reads as zeroes, unless -s (strict) is given. -T accepts ' +
    'qemu-img\'s cache modes; tsemu always reads through the host page cache.';
  static override usage =
    'img compare [--object OBJECTDEF] [-f FMT] [-F FMT] [-T SRC_CACHE] [-p] [-q] [-s] [-U] FILENAME1 FILENAME2';
  static override flags = {
    object: objectFlag,
    format: Flags.string({ char: 'f', description: 'format of FILENAME1 (probed when absent)' }),
    'second-format': Flags.string({ char: 'F', description: 'format of FILENAME2 (probed when absent)' }),
    'source-cache': Flags.string({ char: 'T', description: 'source cache mode (accepted for compatibility)' }),
    progress: Flags.boolean({ char: 'p', description: 'show progress' }),
    quiet: Flags.boolean({ char: 'q', description: 'print nothing, answer with the exit code only' }),
    strict: Flags.boolean({ char: 's', description: 'strict: sizes and allocation must match too' }),
    'force-share': Flags.boolean({ char: 'U', description: 'open the images without taking image locks' }),
  };
  static override args = {
    filename1: Args.string({ description: 'first image', required: true }),
    filename2: Args.string({ description: 'second image', required: true }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ImgCompare);
    try {
      defineObjects(flags.object);
    } catch (e) {
      throw new UserError((e as Error).message, 2);
    }
    const cache = flags['source-cache'];
    if (cache !== undefined && !CACHE_MODES.includes(cache)) throw new UserError(`Invalid source cache option: ${cache}`, 2);
    const bar = new ProgressBar(flags.progress && !flags.quiet);
    const result = await compareImages({
      filename1: args.filename1,
      filename2: args.filename2,
      format1: flags.format,
      format2: flags['second-format'],
      strict: flags.strict,
      forceShare: flags['force-share'],
      progress: (f) => bar.update(f, 1),
    });
    if (result.code === 0) bar.end();
    if (result.error !== undefined) process.stderr.write(`tsemu: ${result.error}\n`);
    if (!flags.quiet) for (const line of result.messages) this.out(line);
    process.exitCode = result.code;
  }
}
