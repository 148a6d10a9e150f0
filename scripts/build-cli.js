/**
 * The CLI's build steps after `tsc` (npm run build): bundle dist/ into
 * dist/bundle/ (bundle.js, removing files of earlier bundles), write
 * dist/bundle/oclif.manifest.json from the bundled command table
 * (oclif-manifest.js; dist/bundle is the CLI's oclif root), then
 * make the bundle's V8 code cache (dist/bundle/cli.cjs.cache, which bin/tsemu.js
 * loads) by running typical commands on scratch images with
 * TSEMU_WRITE_CODE_CACHE=1: each run adds the functions it compiled to the cache.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleCli } from './bundle.js';
import { writeOclifManifest } from './oclif-manifest.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Commands whose code the cache holds, in order (they build on each other's files). */
const CACHE_RUNS = [
  ['img', 'create', '-q', '-f', 'raw', 'a.raw', '4M'],
  ['io', '-f', 'raw', '-c', 'write -P 0x5a 0 1M', '-c', 'write -z 1M 1M', 'a.raw'],
  ['img', 'convert', '-O', 'qcow2', 'a.raw', 'a.qcow2'],
  ['img', 'convert', '-O', 'raw', 'a.qcow2', 'b.raw'],
  ['img', 'convert', '-c', '-O', 'qcow2', 'a.raw', 'c.qcow2'],
  ['img', 'info', 'a.qcow2'],
  ['img', 'check', 'c.qcow2'],
  ['img', 'map', '--output=json', 'a.qcow2'],
];

function writeCodeCache() {
  const dir = mkdtempSync(path.join(tmpdir(), 'tsemu-code-cache-'));
  try {
    for (const args of CACHE_RUNS) {
      execFileSync(process.execPath, [path.join(ROOT, 'bin/tsemu.js'), ...args], {
        cwd: dir,
        env: { ...process.env, TSEMU_WRITE_CODE_CACHE: '1' },
        stdio: ['ignore', 'ignore', 'inherit'],
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const files = await bundleCli(ROOT);
const commands = await writeOclifManifest(path.join(ROOT, 'dist/bundle'));
writeCodeCache();
console.log(`dist/bundle: ${files.join(', ')}, oclif.manifest.json (${commands} commands), cli.cjs.cache`);
