import { Args, Flags } from '@oclif/core';
import { TsemuCommand } from '../base.js';
import { defineObjects, objectFlag } from '../../cli/objects.js';
import { commitImage } from '../../block/ops/commit.js';
import { parseCacheMode, parseRateLimit } from '../../block/ops/copy-args.js';
import { ProgressBar } from '../../cli/progress.js';

export default class ImgCommit extends TsemuCommand {
  static override summary = "Commit an overlay's changes into its backing file";
  static override description =
    'Copy what FILENAME allocates into its backing file (or into BASE further down the chain), then empty ' +
    'FILENAME unless -d is given. -b implies -d.';
  static override usage = 'img commit [--object OBJECTDEF] [-q] [-f FMT] [-t CACHE] [-b BASE] [-r RATE_LIMIT] [-d] [-p] FILENAME';
  static override flags = {
    object: objectFlag,
    quiet: Flags.boolean({ char: 'q', description: 'quiet mode' }),
    format: Flags.string({ char: 'f', description: 'image format (probed when absent)' }),
    cache: Flags.string({ char: 't', description: 'cache mode (none, writeback, unsafe, directsync, writethrough)' }),
    base: Flags.string({ char: 'b', description: 'backing image in the chain to commit into' }),
    'rate-limit': Flags.string({ char: 'r', description: 'bytes per second' }),
    drop: Flags.boolean({ char: 'd', description: 'do not empty FILENAME afterwards' }),
    progress: Flags.boolean({ char: 'p', description: 'show progress' }),
  };
  static override args = {
    filename: Args.string({ description: 'overlay image', required: true }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ImgCommit);
    defineObjects(flags.object);
    parseCacheMode(flags.cache, 'cache', 'writeback');
    const bar = new ProgressBar(flags.progress && !flags.quiet);
    const message = await commitImage({
      filename: args.filename,
      format: flags.format,
      base: flags.base,
      drop: flags.drop,
      rateLimit: parseRateLimit(flags['rate-limit']),
      onProgress: (done, total) => bar.update(done, total),
    });
    bar.update(1, 1);
    bar.end();
    if (!flags.quiet) this.out(message);
  }
}
