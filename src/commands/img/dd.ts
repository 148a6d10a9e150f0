import { Args, Flags } from '@oclif/core';
import { TsemuCommand } from '../base.js';
import { defineObjects, objectFlag } from '../../cli/objects.js';
import { ddImage } from '../../block/ops/dd.js';

export default class ImgDd extends TsemuCommand {
  static override summary = 'Copy part of an image into a new image, dd style';
  static override description =
    'Create OUTPUT holding INPUT from skip·bs up to count·bs (count counts from the start of INPUT, as in qemu-img). ' +
    'bs defaults to 512; sizes take k, M, G, … suffixes.';
  static override usage = 'img dd [--object OBJECTDEF] [-U] [-f FMT] [-O OUTPUT_FMT] [bs=BLOCK_SIZE] [count=BLOCKS] [skip=BLOCKS] if=INPUT of=OUTPUT';
  static override strict = false;
  static override flags = {
    object: objectFlag,
    'force-share': Flags.boolean({ char: 'U', description: 'open the input without taking locks' }),
    format: Flags.string({ char: 'f', description: 'input format (probed when absent)' }),
    'output-format': Flags.string({ char: 'O', description: 'output format (default raw)' }),
  };
  static override args = {
    operands: Args.string({ description: 'bs=, count=, skip=, if=, of= operands' }),
  };

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(ImgDd);
    defineObjects(flags.object);
    await ddImage({
      operands: argv as string[],
      format: flags.format,
      outputFormat: flags['output-format'],
      forceShare: flags['force-share'],
    });
  }
}
