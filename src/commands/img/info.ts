import { Args, Flags } from '@oclif/core';
import { defineObjects, objectFlag } from '../../cli/objects.js';
import { TsemuCommand } from '../base.js';
import { collectImageInfo, formatImageInfoHuman, formatImageInfoJson } from '../../block/ops/info.js';
import { parseOutputFormat } from '../../cli/format-output.js';

export default class ImgInfo extends TsemuCommand {
  static override summary = 'Show what an image holds: format, sizes, backing file, snapshots';
  static override description =
    'Print the image\'s format, virtual size, disk usage, cluster size, backing file and ' +
    'format-specific details, as qemu-img info does; --backing-chain shows every image below it too. ' +
    'An OVA (appliance.ova) shows its first disk; appliance.ova#N shows disk N (from 1, in the OVF DiskSection order).';
  static override usage = 'img info [--object OBJECTDEF] [-f FMT] [--output=OFMT] [--backing-chain] [-U] FILENAME';
  static override flags = {
    object: objectFlag,
    format: Flags.string({ char: 'f', description: 'image format (probed when absent)' }),
    output: Flags.string({ description: 'output format: human (default) or json' }),
    'backing-chain': Flags.boolean({ description: 'also show every image of the backing chain' }),
    'force-share': Flags.boolean({ char: 'U', description: 'open read-only without taking image locks' }),
  };
  static override args = {
    filename: Args.string({ description: 'image to inspect', required: true }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ImgInfo);
    defineObjects(flags.object);
    const output = parseOutputFormat(flags.output);
    const chain = flags['backing-chain'];
    const list = await collectImageInfo(args.filename, {
      format: flags.format,
      backingChain: chain,
      forceShare: flags['force-share'],
    });
    process.stdout.write(output === 'json' ? formatImageInfoJson(list, chain) : formatImageInfoHuman(list));
  }
}
