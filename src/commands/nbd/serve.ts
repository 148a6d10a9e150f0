import { Args, Flags } from '@oclif/core';
import { writeFile } from 'node:fs/promises';
import { TsemuCommand, UserError } from '../base.js';
import { closeImage, openImage } from '../../block/open.js';
import { NBD_DEFAULT_PORT, NbdServer } from '../../services/nbd/server.js';

/** `tsemu nbd serve IMAGE`: the qemu-nbd analogue (export one image over NBD). */
export default class NbdServe extends TsemuCommand {
  static override summary = 'Export an image over NBD (the qemu-nbd analogue)';
  static override description =
    'Serve IMAGE (any format, with its backing chain) to NBD clients such as qemu-img, qemu-io or ' +
    '`tsemu img ... nbd://HOST:PORT/NAME`: fixed newstyle negotiation, structured replies and ' +
    'base:allocation block status. Without --persistent the server exits when its last client ' +
    'disconnects, as qemu-nbd does; it also stops on SIGINT or SIGTERM.';
  static override usage =
    'nbd serve [-b ADDR] [-p PORT] [-k PATH] [-r] [-x NAME] [-D TEXT] [-e N] [-t] [-f FMT] [--pid-file PATH] IMAGE';
  static override flags = {
    bind: Flags.string({ char: 'b', description: 'interface to bind to (default 0.0.0.0)' }),
    port: Flags.string({ char: 'p', description: `port to listen on (default ${NBD_DEFAULT_PORT})` }),
    socket: Flags.string({ char: 'k', description: 'listen on this Unix socket instead of TCP' }),
    'read-only': Flags.boolean({ char: 'r', description: 'export read-only' }),
    'export-name': Flags.string({ char: 'x', description: 'export name (default: the empty name)' }),
    description: Flags.string({ char: 'D', description: 'a human-readable description of the export' }),
    shared: Flags.string({ char: 'e', description: 'serve up to N clients at once (default 1)' }),
    persistent: Flags.boolean({ char: 't', description: 'keep serving after the last client disconnects' }),
    format: Flags.string({ char: 'f', description: 'image format (probed when absent)' }),
    'pid-file': Flags.string({ description: 'write the server\'s process ID to PATH once it listens' }),
  };
  static override args = {
    image: Args.string({ description: 'image to export', required: true }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(NbdServe);
    const port = flags.port === undefined ? NBD_DEFAULT_PORT : Number(flags.port);
    if (!/^\d+$/.test(flags.port ?? '0') || port > 65535) throw new UserError(`Invalid port '${flags.port}'`);
    const shared = flags.shared === undefined ? 1 : Number(flags.shared);
    if (!/^\d+$/.test(flags.shared ?? '1') || shared < 1) {
      throw new UserError(`Invalid shared device number '${flags.shared}'`);
    }
    if (flags.socket !== undefined && (flags.bind !== undefined || flags.port !== undefined)) {
      throw new UserError('-k and -b/-p are mutually exclusive');
    }
    const readOnly = flags['read-only'];
    const image = await openImage(args.image, { format: flags.format, readOnly }).catch((e: Error) => {
      throw new UserError(`Failed to blk_new_open '${args.image}': ${e.message}`);
    });
    let server: NbdServer | null = null;
    try {
      server = await NbdServer.listen({
        exports: [{ name: flags['export-name'] ?? '', description: flags.description ?? '', image, readOnly }],
        bind: flags.bind,
        port,
        socketPath: flags.socket,
        shared,
        persistent: flags.persistent,
        log: (line) => process.stderr.write(`tsemu: ${line}\n`),
      });
      if (flags['pid-file'] !== undefined) await writeFile(flags['pid-file'], `${process.pid}\n`);
    } catch (e) {
      await server?.close();
      await closeImage(image);
      throw new UserError((e as Error).message);
    }
    const running = server;
    const stop = (): void => void running.close();
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    await running.finished;
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await closeImage(image);
  }
}
