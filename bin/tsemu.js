#!/usr/bin/env node
// The tsemu command: runs the bundled CLI (dist/bundle/cli.js, built with
// oclif.manifest.json by `npm run build`, which the `prepare` script runs on
// `npm install` and `npm test` runs first).
import { existsSync } from 'node:fs';

if (!existsSync(new URL('../dist/bundle/cli.js', import.meta.url))) {
  process.stderr.write('tsemu: the CLI is not built: run `npm run build` (npm install runs it)\n');
  process.exit(1);
}
const { run } = await import('../dist/bundle/cli.js');
await run(process.argv.slice(2));
