import { Args, Flags } from '@oclif/core';
import { TsemuCommand } from '../base.js';
import { defineObjects, objectFlag } from '../../cli/objects.js';
import { amendImage } from '../../block/ops/amend.js';

export default class ImgAmend extends TsemuCommand {
  static override summary = 'Change format options of an existing image';
  static override description =
    'Amend the format options of FILENAME, as qemu-img amend does: for qcow2 compat (0.10 or 1.1), ' +
    'refcount_bits, lazy_refcounts and size. "-o help" lists what can be amended.';
  static override usage = 'img amend [--object OBJECTDEF] [-p] [-q] [-f FMT] [-t CACHE] [--force] -o OPTIONS FILENAME';
  static override flags = {
    object: objectFlag,
    format: Flags.string({ char: 'f', description: 'image format (probed when absent)' }),
    options: Flags.string({ char: 'o', description: 'options to change, "-o help" lists them', multiple: true, multipleNonGreedy: true }),
    progress: Flags.boolean({ char: 'p', description: 'show progress' }),
    cache: Flags.string({
      char: 't', description: 'cache mode (accepted for compatibility)',
      options: ['none', 'writeback', 'unsafe', 'directsync', 'writethrough'],
    }),
    force: Flags.boolean({ description: 'allow changes that need it (accepted for compatibility)' }),
    quiet: Flags.boolean({ char: 'q', description: 'quiet mode' }),
  };
  static override args = {
    filename: Args.string({ description: 'image to amend', required: true }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ImgAmend);
    defineObjects(flags.object);
    const text = await amendImage({
      filename: args.filename,
      format: flags.format,
      options: flags.options ?? [],
      progress: flags.progress && !flags.quiet,
    });
    process.stdout.write(text);
  }
}
