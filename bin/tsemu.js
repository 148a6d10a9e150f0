#!/usr/bin/env node
// The tsemu command: runs the bundled CLI (dist/bundle/cli.js, built with
// oclif.manifest.json by `npm run build`, which the `prepare` script runs on
// `npm install`). The build writes the manifest last; when tsc has rewritten any
// compiled file the bundle was made from (dist/bundle/inputs.json) since, or
// the bundle is missing, the bundle is stale: in a development tree (scripts/
// present) it is rebuilt here first, so the CLI always runs what tsc compiled last.
import { existsSync, readFileSync, statSync } from 'node:fs';

const root = new URL('../', import.meta.url);
const modified = (relative) => statSync(new URL(relative, root), { throwIfNoEntry: false })?.mtimeMs ?? Infinity;

function bundleIsStale() {
  const built = modified('oclif.manifest.json');
  if (built === Infinity || !existsSync(new URL('dist/bundle/inputs.json', root))) return true;
  const inputs = JSON.parse(readFileSync(new URL('dist/bundle/inputs.json', root), 'utf8'));
  return inputs.some((file) => modified(file) > built);
}

if (existsSync(new URL('scripts/build-cli.js', root)) && bundleIsStale()) {
  const { buildCli } = await import('../scripts/build-cli.js');
  await buildCli();
}

const { run } = await import('../dist/bundle/cli.js');
await run(process.argv.slice(2));
