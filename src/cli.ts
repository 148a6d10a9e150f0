/**
 * Entry point of the `tsemu` command line: hands argv to oclif, which finds the
 * commands through the explicit table in commands/index.ts (no directory scan,
 * so start-up stays short).
 */
import { execute } from '@oclif/core';

export async function run(args: string[]): Promise<void> {
  await execute({ args, dir: import.meta.url });
}
