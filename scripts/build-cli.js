/**
 * The CLI's build steps after `tsc` (npm run build): bundle dist/ into
 * dist/bundle/ (bundle.js, removing chunks of earlier bundles), then write
 * oclif.manifest.json from the bundled command table (oclif-manifest.js).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleCli } from './bundle.js';
import { writeOclifManifest } from './oclif-manifest.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const files = await bundleCli(ROOT);
const commands = await writeOclifManifest(ROOT);
console.log(`dist/bundle: ${files} files; oclif.manifest.json: ${commands} commands`);
