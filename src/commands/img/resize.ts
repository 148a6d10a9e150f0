import { Args, Flags } from '@oclif/core';
import { TsemuCommand } from '../base.js';
import { defineObjects, objectFlag } from '../../cli/objects.js';
import { ShrinkNotAllowedError, resizeImage } from '../../block/ops/resize.js';

export default class ImgResize extends TsemuCommand {
  static override summary = 'Change an image\'s virtual size';
  static override description =
    'Set the virtual size of FILENAME to SIZE, or grow/shrink it by +SIZE/-SIZE (suffixes k, M, G, T, P, E). ' +
    'Shrinking deletes the data past the new end and needs --shrink; --preallocation applies to the new area.';
  static override usage = 'img resize [--object OBJECTDEF] [-f FMT] [--preallocation=PREALLOC] [-q] [--shrink] FILENAME [+|-]SIZE';
  static override flags = {
    object: objectFlag,
    format: Flags.string({ char: 'f', description: 'image format (probed when absent)' }),
    preallocation: Flags.string({ description: 'preallocation of the new area: off, metadata, falloc, full' }),
    quiet: Flags.boolean({ char: 'q', description: 'quiet mode' }),
    shrink: Flags.boolean({ description: 'allow the image to get smaller' }),
  };
  static override args = {
    filename: Args.string({ description: 'image to resize' }),
    size: Args.string({ description: '[+|-]SIZE' }),
  };

  async run(): Promise<void> {
    // The size goes last and may start with '-': take it off before flag parsing, as qemu-img does.
    const argv = [...this.argv];
    const size = argv.pop();
    const { args, flags } = await this.parse(ImgResize, argv.filter((a) => a !== '--'));
    defineObjects(flags.object);
    if (size === undefined || args.filename === undefined) throw new Error('Expecting image file name and size');
    if (args.size !== undefined) throw new Error(`Unexpected argument: ${args.size}`);
    try {
      await resizeImage({
        filename: args.filename,
        size,
        format: flags.format,
        preallocation: flags.preallocation,
        shrink: flags.shrink,
      });
    } catch (e) {
      if (!(e instanceof ShrinkNotAllowedError)) throw e;
      process.stderr.write(`tsemu: ${e.message}\ntsemu: warning: ${e.warning}\n`);
      process.exitCode = 1;
      return;
    }
    if (!flags.quiet) this.out('Image resized.');
  }
}
