import { Args, Flags } from '@oclif/core';
import { TsemuCommand } from '../base.js';
import { defineObjects, objectFlag } from '../../cli/objects.js';
import { mapImage } from '../../block/ops/map.js';
import { parseOutputFormat } from '../../cli/format-output.js';

export default class ImgMap extends TsemuCommand {
  static override summary = 'Show where an image\'s content is stored';
  static override description =
    'List the extents of FILENAME (through its backing chain): which layer defines each range, whether it ' +
    'is data or zeroes, and where it is stored, as qemu-img map does.';
  static override usage =
    'img map [--object OBJECTDEF] [-f FMT] [--start-offset=OFFSET] [--max-length=LEN] [--output=OFMT] [-U] FILENAME';
  static override flags = {
    object: objectFlag,
    format: Flags.string({ char: 'f', description: 'image format (probed when absent)' }),
    'start-offset': Flags.string({ description: 'first byte to map' }),
    'max-length': Flags.string({ description: 'map at most this many bytes' }),
    output: Flags.string({ description: 'output format: human (default) or json' }),
    'force-share': Flags.boolean({ char: 'U', description: 'open read-only without taking image locks' }),
  };
  static override args = {
    filename: Args.string({ description: 'image to map', required: true }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ImgMap);
    defineObjects(flags.object);
    const chunks: string[] = [];
    const write = (text: string) => {
      chunks.push(text);
      if (chunks.length >= 256) process.stdout.write(chunks.splice(0).join(''));
    };
    try {
      await mapImage(
        {
          filename: args.filename,
          format: flags.format,
          startOffset: flags['start-offset'],
          maxLength: flags['max-length'],
          output: parseOutputFormat(flags.output),
          forceShare: flags['force-share'],
        },
        write,
      );
    } finally {
      process.stdout.write(chunks.join(''));
    }
  }
}
