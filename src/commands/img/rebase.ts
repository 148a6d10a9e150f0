import { Args, Flags } from '@oclif/core';
import { TsemuCommand } from '../base.js';
import { defineObjects, objectFlag } from '../../cli/objects.js';
import { rebaseImage } from '../../block/ops/rebase.js';
import { parseCacheMode } from '../../block/ops/copy-args.js';
import { ProgressBar } from '../../cli/progress.js';

export default class ImgRebase extends TsemuCommand {
  static override summary = 'Change the backing file of an image';
  static override description =
    'Make FILENAME an overlay of BACKING_FILE ("" for none). Safe mode first copies into FILENAME every ' +
    'cluster where the old and new backing files differ, so its content stays the same; -u only rewrites the name.';
  static override usage =
    'img rebase [--object OBJECTDEF] [-q] [-f FMT] [-t CACHE] [-T SRC_CACHE] [-p] [-u] [-c] [-U] -b BACKING_FILE [-F BACKING_FMT] FILENAME';
  static override flags = {
    object: objectFlag,
    quiet: Flags.boolean({ char: 'q', description: 'quiet mode' }),
    format: Flags.string({ char: 'f', description: 'image format (probed when absent)' }),
    cache: Flags.string({ char: 't', description: 'cache mode for FILENAME' }),
    'source-cache': Flags.string({ char: 'T', description: 'cache mode for the backing files' }),
    progress: Flags.boolean({ char: 'p', description: 'show progress' }),
    unsafe: Flags.boolean({ char: 'u', description: 'only change the backing file name' }),
    compress: Flags.boolean({ char: 'c', description: 'write copied clusters compressed' }),
    'force-share': Flags.boolean({ char: 'U', description: 'open the backing files without taking locks' }),
    'backing-file': Flags.string({ char: 'b', description: 'new backing file ("" for none)' }),
    'backing-format': Flags.string({ char: 'F', description: 'format of the new backing file' }),
  };
  static override args = {
    filename: Args.string({ description: 'image to rebase', required: true }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ImgRebase);
    defineObjects(flags.object);
    if (flags['backing-file'] === undefined && !flags.unsafe) {
      throw new Error('Must specify backing file (-b) or use unsafe mode (-u)');
    }
    parseCacheMode(flags.cache, 'cache', 'writeback');
    parseCacheMode(flags['source-cache'], 'source cache', 'writeback');
    const bar = new ProgressBar(flags.progress && !flags.quiet && !flags.unsafe);
    await rebaseImage({
      filename: args.filename,
      format: flags.format,
      backingFile: flags['backing-file'] ?? '',
      backingFormat: flags['backing-format'],
      unsafe: flags.unsafe,
      compress: flags.compress,
      forceShare: flags['force-share'],
      onProgress: (done, total) => bar.update(done, total),
    });
    bar.update(1, 1);
    bar.end();
  }
}
