import { Args, Flags } from '@oclif/core';
import { createInterface } from 'node:readline';
import { TsemuCommand, UserError } from './base.js';
import { IoOpenError, runIo } from '../io/run.js';

export default class Io extends TsemuCommand {
  static override summary = 'Run disk I/O commands on an image (the qemu-io analogue)';
  static override description =
    'Open FILENAME and run each -c command in order (read, readv, write, writev, discard, truncate, alloc, ' +
    'flush, map, length, info, sleep, help), printing what qemu-io prints; without -c, commands are read ' +
    'from standard input. ' +
    'The exit code is 1 when any command failed.';
  static override usage = 'io [-f FMT] [-r] [-U] [-c COMMAND]... [-n] [-t CACHE] [--image-opts] FILENAME';
  static override flags = {
    format: Flags.string({ char: 'f', description: 'image format (probed when absent)' }),
    'read-only': Flags.boolean({ char: 'r', description: 'open the image read-only' }),
    'force-share': Flags.boolean({ char: 'U', description: 'open read-only without taking write locks (needs -r)' }),
    cmd: Flags.string({ char: 'c', description: 'command to run (repeatable)', multiple: true, multipleNonGreedy: true }),
    nocache: Flags.boolean({ char: 'n', description: 'same as -t none (accepted for qemu-io scripts)' }),
    cache: Flags.string({
      char: 't',
      description: 'cache mode: writethrough and directsync make every write stable before it completes; ' +
        'none, writeback and unsafe write through the host page cache',
    }),
    'image-opts': Flags.boolean({ description: 'FILENAME is an option string: driver=FMT,file.filename=PATH' }),
  };
  static override args = {
    filename: Args.string({ description: 'image to open', required: true }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Io);
    const commands = flags.cmd ?? [];
    const lines = commands.length === 0 ? createInterface({ input: process.stdin, terminal: false }) : undefined;
    try {
      const ok = await runIo(
        {
          filename: args.filename,
          format: flags.format,
          readOnly: flags['read-only'],
          forceShare: flags['force-share'],
          cache: flags.cache ?? (flags.nocache ? 'none' : undefined),
          imageOpts: flags['image-opts'],
          commands,
        },
        {
          out: (text) => process.stdout.write(`${text}\n`),
          err: (text) => process.stderr.write(`${text}\n`),
          prompt: (text) => process.stdout.write(text),
        },
        lines?.[Symbol.asyncIterator](),
      );
      if (!ok) process.exitCode = 1;
    } catch (e) {
      if (e instanceof IoOpenError) throw new UserError(e.message);
      throw e;
    } finally {
      lines?.close();
    }
  }
}
