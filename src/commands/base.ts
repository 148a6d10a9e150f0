/**
 * Shared behaviour of tsemu commands: errors are printed the way qemu-img prints
 * them ("tsemu: <message>" on stderr, no stack trace) and end the process with the
 * exit code the error carries (1 unless it says otherwise; wrong arguments exit 1
 * too, as qemu-img's do). Commands stay thin:
 * they parse flags, call a library function and print.
 */
import { Command } from '@oclif/core';

/** An error whose message is meant for the user, with the exit code to end with. */
export class UserError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'UserError';
  }
}

export abstract class TsemuCommand extends Command {
  protected override async catch(
    err: Error & { exitCode?: number; code?: string; oclif?: { exit?: number } },
  ): Promise<unknown> {
    // this.exit(n) throws oclif's EEXIT error: let oclif end the process with n.
    if (err.code === 'EEXIT') return super.catch(err);
    // Everything else, oclif's argument errors included, ends with exit 1 as in qemu-img.
    process.stderr.write(`tsemu: ${err.message}\n`);
    if (process.env.TSEMU_DEBUG && err.stack) process.stderr.write(`${err.stack}\n`);
    process.exitCode = err.exitCode ?? 1;
    return undefined;
  }

  /** Print a line on stdout. */
  protected out(text: string): void {
    process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  }
}
