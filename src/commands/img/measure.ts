import { Args, Flags } from '@oclif/core';
import { TsemuCommand } from '../base.js';
import { defineObjects, objectFlag } from '../../cli/objects.js';
import { formatMeasure, measureImage } from '../../block/ops/measure.js';
import { parseOutputFormat } from '../../cli/format-output.js';

export default class ImgMeasure extends TsemuCommand {
  static override summary = 'Compute the host size a new image would need';
  static override description =
    'Print how many bytes an image of the output format needs: for an empty image of --size bytes, ' +
    'or for a converted copy of FILENAME (its whole backing chain). "required size" counts the data ' +
    'the copy holds, "fully allocated size" a fully preallocated image.';
  static override usage =
    'img measure [--object OBJECTDEF] [--output=OFMT] [-O OUTPUT_FMT] [-o OPTIONS] [--size N | [-f FMT] [-l SNAPSHOT] [-U] FILENAME]';
  static override flags = {
    object: objectFlag,
    output: Flags.string({ description: 'output format: human (default) or json' }),
    'output-format': Flags.string({ char: 'O', description: 'format of the new image (default raw)' }),
    options: Flags.string({
      char: 'o', description: 'options of the new image\'s format', multiple: true, multipleNonGreedy: true,
    }),
    size: Flags.string({ description: 'virtual size of an empty image (suffixes k, M, G, T, P, E)' }),
    format: Flags.string({ char: 'f', description: 'format of FILENAME (probed when absent)' }),
    snapshot: Flags.string({ char: 'l', description: 'measure this internal snapshot of FILENAME' }),
    'force-share': Flags.boolean({ char: 'U', description: 'open FILENAME without taking image locks' }),
  };
  static override args = {
    filename: Args.string({ description: 'image whose converted copy is measured' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ImgMeasure);
    defineObjects(flags.object);
    const output = parseOutputFormat(flags.output);
    const result = await measureImage({
      filename: args.filename,
      size: flags.size,
      format: flags.format,
      outputFormat: flags['output-format'],
      options: flags.options ?? [],
      snapshot: flags.snapshot,
      forceShare: flags['force-share'],
    });
    process.stdout.write(formatMeasure(result, output));
  }
}
