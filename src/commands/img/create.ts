import { Args, Flags } from '@oclif/core';
import { TsemuCommand } from '../base.js';
import { createOptionsHelp, isOptionsHelp, prepareCreate } from '../../block/ops/create.js';

export default class ImgCreate extends TsemuCommand {
  static override summary = 'Create a new disk image';
  static override description =
    'Create FILENAME of the given format and SIZE (suffixes k, M, G, T, P, E). With -b the image is a ' +
    'copy-on-write overlay of the backing file, and SIZE defaults to the backing file\'s size. ' +
    '"-o help" lists the format\'s options.';
  static override usage = 'img create [-q] [-f FMT] [-b BACKING_FILE [-F BACKING_FMT]] [-u] [-o OPTIONS] FILENAME [SIZE]';
  static override flags = {
    format: Flags.string({ char: 'f', description: 'image format (default raw)', default: 'raw' }),
    'backing-file': Flags.string({ char: 'b', description: 'backing file (makes a copy-on-write overlay)' }),
    'backing-format': Flags.string({ char: 'F', description: 'format of the backing file' }),
    unsafe: Flags.boolean({ char: 'u', description: 'do not open the backing file (SIZE or -o size and -F needed)' }),
    options: Flags.string({
      char: 'o', description: 'format options, "-o help" lists them', multiple: true, multipleNonGreedy: true,
    }),
    quiet: Flags.boolean({ char: 'q', description: 'quiet mode' }),
  };
  static override args = {
    filename: Args.string({ description: 'image to create' }),
    size: Args.string({ description: 'virtual size' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ImgCreate);
    const options = flags.options ?? [];
    if (isOptionsHelp(options)) {
      process.stdout.write(createOptionsHelp(flags.format, args.filename));
      return;
    }
    if (args.filename === undefined) throw new Error('Expecting image file name');
    const prepared = await prepareCreate({
      filename: args.filename,
      format: flags.format,
      size: args.size,
      backingFile: flags['backing-file'],
      backingFormat: flags['backing-format'],
      unsafe: flags.unsafe,
      options,
    });
    if (!flags.quiet) this.out(prepared.formatting);
    await prepared.create();
  }
}
