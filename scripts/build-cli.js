/**
 * The CLI's build steps after `tsc` (npm run build): bundle dist/ into
 * dist/bundle/ (bundle.js), then write oclif.manifest.json from the bundled
 * command table (oclif-manifest.js). The manifest is written last, so its
 * modification time marks a finished build: bin/tsemu.js compares it with the
 * compiled files the bundle was made from (dist/bundle/inputs.json) and calls
 * buildCli() again when tsc has rewritten any of them since (a bare
 * `tsc -p tsconfig.build.json` during development).
 *
 * Run directly (`node scripts/build-cli.js`) it also removes chunks of earlier
 * bundles and prints esbuild's warnings; the rebuild bin/tsemu.js starts keeps
 * old chunks (another CLI process may still be loading them) and prints only
 * errors, so the command's own output stays as it is.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleCli } from './bundle.js';
import { writeOclifManifest } from './oclif-manifest.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Bundles and writes the manifest; returns what it built, for a log line. */
export async function buildCli({ standalone = false } = {}) {
  const files = await bundleCli(ROOT, { clean: standalone, logLevel: standalone ? 'warning' : 'error' });
  const commands = await writeOclifManifest(ROOT);
  return `dist/bundle: ${files} files; oclif.manifest.json: ${commands} commands`;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(await buildCli({ standalone: true }));
}
