import { Args, Flags } from '@oclif/core';
import { TsemuCommand, UserError } from '../base.js';
import { defineObjects, objectFlag } from '../../cli/objects.js';
import { checkImage, formatCheckHuman, formatCheckJson } from '../../block/ops/check.js';
import { parseOutputFormat } from '../../cli/format-output.js';

export default class ImgCheck extends TsemuCommand {
  static override summary = 'Check an image for consistency (and repair it with -r)';
  static override description =
    'Recompute every cluster\'s reference count from the image\'s metadata and compare it with the stored ' +
    'one, as qemu-img check does. -r leaks frees leaked clusters; -r all also fixes refcount errors and ' +
    'OFLAG_COPIED flags, rebuilding the refcount structure when needed. Exit codes: 0 consistent, ' +
    '1 the check could not complete, 2 corruptions, 3 leaks only, 63 the format has no check.';
  static override usage = 'img check [--object OBJECTDEF] [-q] [-f FMT] [--output=OFMT] [-r (leaks|all)] [-T SRC_CACHE] [-U] FILENAME';
  static override flags = {
    object: objectFlag,
    format: Flags.string({ char: 'f', description: 'image format (probed when absent)' }),
    output: Flags.string({ description: 'output format: human (default) or json' }),
    repair: Flags.string({ char: 'r', description: 'repair: leaks, or all', options: ['leaks', 'all'] }),
    cache: Flags.string({
      char: 'T', description: 'cache mode (accepted for compatibility)',
      options: ['none', 'writeback', 'unsafe', 'directsync', 'writethrough'],
    }),
    'force-share': Flags.boolean({ char: 'U', description: 'open read-only without taking image locks' }),
    quiet: Flags.boolean({ char: 'q', description: 'quiet mode' }),
  };
  static override args = {
    filename: Args.string({ description: 'image to check', required: true }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ImgCheck);
    defineObjects(flags.object);
    const output = parseOutputFormat(flags.output);
    if (flags['force-share'] && flags.repair) throw new UserError('--force-share/-U is not allowed with -r');
    const result = await checkImage({
      filename: args.filename,
      format: flags.format,
      repair: flags.repair as 'leaks' | 'all' | undefined,
      forceShare: flags['force-share'],
      log: (line) => process.stderr.write(`${line}\n`),
    });
    if (!flags.quiet) {
      if (output === 'human') {
        if (result.repairSummary) process.stdout.write(result.repairSummary);
        process.stdout.write(formatCheckHuman(result.check));
      } else {
        process.stdout.write(formatCheckJson(result.check));
      }
    }
    if (result.exitCode === 1) throw new UserError('Check failed', 1);
    process.exitCode = result.exitCode;
  }
}
