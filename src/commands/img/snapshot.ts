import { Args, Flags } from '@oclif/core';
import { TsemuCommand, UserError } from '../base.js';
import { defineObjects, objectFlag } from '../../cli/objects.js';
import { type SnapshotAction, snapshotImage } from '../../block/ops/snapshot.js';

export default class ImgSnapshot extends TsemuCommand {
  static override summary = 'List, create, apply or delete internal snapshots';
  static override description =
    'Manage the internal snapshots of a qcow2 image, as qemu-img snapshot does: -l lists them, -c creates ' +
    'one of the current state, -a makes one the current state, -d deletes one (by ID or name).';
  static override usage = 'img snapshot [--object OBJECTDEF] [-q] [-f FMT] [-U] [-l | -a SNAPSHOT | -c SNAPSHOT | -d SNAPSHOT] FILENAME';
  static override flags = {
    object: objectFlag,
    format: Flags.string({ char: 'f', description: 'image format (probed when absent)' }),
    list: Flags.boolean({ char: 'l', description: 'list all snapshots' }),
    apply: Flags.string({ char: 'a', description: 'apply (revert to) a snapshot' }),
    create: Flags.string({ char: 'c', description: 'create a snapshot' }),
    delete: Flags.string({ char: 'd', description: 'delete a snapshot' }),
    'force-share': Flags.boolean({ char: 'U', description: 'open read-only without taking image locks' }),
    quiet: Flags.boolean({ char: 'q', description: 'quiet mode' }),
  };
  static override args = {
    filename: Args.string({ description: 'image', required: true }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ImgSnapshot);
    defineObjects(flags.object);
    const actions: SnapshotAction[] = [];
    if (flags.list) actions.push({ kind: 'list' });
    if (flags.apply !== undefined) actions.push({ kind: 'apply', name: flags.apply });
    if (flags.create !== undefined) actions.push({ kind: 'create', name: flags.create });
    if (flags.delete !== undefined) actions.push({ kind: 'delete', name: flags.delete });
    if (actions.length > 1) throw new UserError("Cannot mix '-l', '-a', '-c', '-d'");
    // Like qemu-img, no action opens the image and does nothing else.
    const action = actions[0] ?? { kind: 'list' as const };
    if (flags['force-share'] && action.kind !== 'list') {
      throw new UserError(`Could not open '${args.filename}': force-share=on can only be used with read-only images`);
    }
    const text = await snapshotImage({
      filename: args.filename,
      format: flags.format,
      action,
      forceShare: flags['force-share'],
    });
    if (actions.length > 0) process.stdout.write(text);
  }
}
