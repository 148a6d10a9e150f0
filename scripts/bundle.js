/**
 * Build step: bundles the compiled CLI (dist/, from tsc) with esbuild into
 * dist/bundle/, so start-up reads a few files instead of resolving and compiling
 * hundreds of small modules (@oclif/core and its dependencies are most of them).
 *
 * Entries, written flat into dist/bundle/: cli.js (what bin/tsemu.js runs),
 * index.js (the command table oclif loads; package.json oclif.commands.target)
 * and worker.js (the compression worker, which the pool starts from
 * `./worker.js` next to its own code). Code shared between entries, and each
 * command the table imports lazily, becomes a chunk, so one copy of @oclif/core
 * serves them all and a command's code loads only when it runs. Packages that
 * must stay files of their own are left external: koffi (native addon),
 * @bokuweb/zstd-wasm (loads its .wasm next to itself) and typescript (which
 * oclif requires only for TypeScript development setups). oclif's check of
 * Node's version against its own package.json cannot work in a bundle (it finds
 * that file through __dirname, which ES modules lack) and only costs loading
 * semver, so it is turned off at build time; package.json's engines field
 * (node >= 20) is stricter than oclif's anyway.
 *
 * Files are written through a temporary name and renamed, so a CLI started while
 * the build runs never reads half a file; chunks of earlier bundles are removed.
 */
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { build } from 'esbuild';

const EXTERNAL = ['koffi', '@bokuweb/zstd-wasm', 'typescript'];

/** The ESM output has no `require`; bundled CommonJS modules (oclif's) need one. */
const REQUIRE_SHIM = "import { createRequire as __tsemuCreateRequire } from 'node:module';\n" +
  'const require = __tsemuCreateRequire(import.meta.url);';

async function writeAtomically(file, contents) {
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, contents);
  await rename(temp, file);
}

/** Bundles `<root>/dist` into `<root>/dist/bundle`; returns the number of files written. */
export async function bundleCli(root) {
  const dist = path.join(root, 'dist');
  const outdir = path.join(dist, 'bundle');
  const result = await build({
    entryPoints: ['cli.js', 'commands/index.js', 'block/compress/worker.js'].map((f) => path.join(dist, f)),
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    outdir,
    entryNames: '[name]',
    external: EXTERNAL,
    banner: { js: REQUIRE_SHIM },
    define: { 'process.env.OCLIF_DISABLE_ENGINE_WARNING': '"1"' },
    write: false,
    absWorkingDir: root,
    logLevel: 'warning',
  });
  await mkdir(outdir, { recursive: true });
  for (const file of result.outputFiles) await writeAtomically(file.path, file.contents);
  const written = new Set(result.outputFiles.map((f) => path.basename(f.path)));
  for (const name of await readdir(outdir)) {
    if (!written.has(name)) await rm(path.join(outdir, name), { force: true });
  }
  return result.outputFiles.length;
}
