/**
 * Entry point of the `tsemu` command line: hands argv to oclif. oclif reads the
 * commands' ids, flags and help texts from oclif.manifest.json and imports only
 * the command that runs, through the lazy table in commands/index.ts; `npm run
 * build` bundles this module with everything it loads into dist/bundle/ and
 * writes that manifest (scripts/build-cli.js), which keeps start-up short.
 */
import { execute } from '@oclif/core';
import { deferExtraCaCerts } from './block/protocols/tls-trust.js';

export interface RunOptions {
  /** The NODE_EXTRA_CA_CERTS file the launcher kept from Node (bin/tsemu.js): HTTPS adds it on first use. */
  extraCaCerts?: string;
}

export async function run(args: string[], opts: RunOptions = {}): Promise<void> {
  deferExtraCaCerts(opts.extraCaCerts);
  await execute({ args, dir: import.meta.url });
}
