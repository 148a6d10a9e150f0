/**
 * Build step: bundles the compiled CLI (dist/, from tsc) with esbuild into
 * dist/bundle/, so start-up reads one file instead of resolving and compiling
 * hundreds of small modules (@oclif/core and its dependencies are most of them).
 *
 * Outputs, written flat into dist/bundle/:
 *   - cli.cjs: the whole CLI as one CommonJS file (exports run, the command
 *     table COMMANDS and delayOptimization, which bin/tsemu.js calls for
 *     short-lived commands: src/util/tiering.ts). CommonJS because bin/tsemu.js compiles it with node:vm,
 *     which can take a V8 code cache (cli.cjs.cache, made by build-cli.js); ES
 *     modules cannot on Node 20. Its text is the module's code inside the
 *     wrapper function Node would put around it (selfWrapped), so the launcher
 *     compiles the file's text as it reads it. Each command's module is still evaluated only
 *     when that command runs (esbuild turns the table's lazy import()s into
 *     on-demand initialisers), the Node built-ins that lazy-builtins.js
 *     names load on first use, oclif's platform check does not load
 *     child_process (oclif-wsl-utils.js), and oclif-patches.js takes a few
 *     more start-up costs out of oclif's own code.
 *   - cli.cjs.LEGAL.txt: the license comments of bundled packages.
 *   - package.json: what oclif reads about the CLI (oclif finds the package.json
 *     nearest to the running code): the package's name, version and oclif
 *     configuration, the command table being ./index.js; of type commonjs.
 *   - index.js: that command table: it re-exports cli.cjs. Being CommonJS, oclif
 *     require()s it, and bin/tsemu.js has put the module it compiled in
 *     require.cache, so this gets the running copy instead of evaluating the
 *     bundle a second time, and no dynamic import() runs (code compiled with
 *     node:vm from a code cache cannot import() on Node 20).
 *   - undici.cjs: undici (the http protocol's HTTP client, about 570 KB, 30%
 *     of the CLI's code), which only a command on an http:// or https:// image
 *     loads, on its first request. Left in cli.cjs, every start-up read it and
 *     its code cache carried it (measured: bundle load 27.0 -> 25.6 ms of CPU).
 *     cli.cjs reaches it through a stand-in module (undiciApart) whose require of
 *     ./undici.cjs stays a require: an import() of an external file would stay
 *     an import(), which code compiled from a code cache cannot run.
 *   - worker.cjs, vcpu-worker.cjs, compile-worker.cjs and kvm-vcpu-worker.cjs: the worker
 *     threads (WORKERS: the compression worker, a RISC-V vCPU, its JIT's compile worker
 *     and a KVM vCPU of `tsemu run`), each started
 *     from `./<name>.cjs` next to the
 *     code that starts it (same extension as that code).
 * oclif-manifest.js then adds oclif.manifest.json next to them.
 * In CommonJS `import.meta.url` does not exist: it is defined as the URL of the
 * bundle file itself, which is what every use of it here means (a sibling file,
 * or a base for require). Packages that must stay files of their own are left
 * external: koffi (native addon), @bokuweb/zstd-wasm (loads its .wasm next to
 * itself) and typescript (which oclif requires only for TypeScript development
 * setups). oclif's check of Node's version against its own package.json cannot
 * work in a bundle and only costs loading semver, so it is turned off at build
 * time; package.json's engines field (node >= 20) is stricter than oclif's anyway.
 *
 * Every bundle is written without comments or indentation and in ASCII (see
 * asciiOnly): start-up reads and hashes a third less source, and V8 keeps it as
 * one byte per character. Names are kept, so stack traces still name functions.
 * esbuild's helper for importing CommonJS modules from ES modules makes one
 * namespace object per module instead of one per importer, and none for a Node
 * built-in that is only default-imported (shared-namespaces.js).
 *
 * Files are written through a temporary name and renamed, so a CLI started while
 * the build runs never reads half a file; files of earlier bundles are removed,
 * except the oclif manifest, which the next build step replaces the same way (a
 * CLI started in between finds the earlier manifest rather than none, without
 * which oclif cannot match a command's words to its id). An earlier code cache
 * goes: bin/tsemu.js would not use one older than the bundle anyway.
 */
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { build } from 'esbuild';
import { lazyBuiltins } from './lazy-builtins.js';
import { oclifPatches } from './oclif-patches.js';
import { oclifWslUtils } from './oclif-wsl-utils.js';
import { builtinDefaults, shareNamespaces } from './shared-namespaces.js';

const EXTERNAL = ['koffi', '@bokuweb/zstd-wasm', 'typescript'];

const UNDICI_FILE = 'undici.cjs';

/**
 * esbuild plugin for cli.cjs: imports of undici resolve to a bundled stand-in
 * that requires ./undici.cjs (next to cli.cjs) when first evaluated.
 */
const undiciApart = {
  name: 'undici-apart',
  setup(build) {
    build.onResolve({ filter: /^undici$/ }, () => ({ path: 'undici', namespace: 'undici-apart' }));
    build.onResolve({ filter: /^\.\/undici\.cjs$/ }, (args) => ({ path: args.path, external: true }));
    build.onLoad({ filter: /.*/, namespace: 'undici-apart' }, () => ({
      contents: `module.exports = require('./${UNDICI_FILE}');`,
      loader: 'js',
    }));
  },
};

const META_URL = '__tsemuModuleUrl';

const COMMON = {
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  external: EXTERNAL,
  banner: { js: `const ${META_URL} = require('node:url').pathToFileURL(__filename).href;` },
  define: { 'process.env.OCLIF_DISABLE_ENGINE_WARNING': '"1"', 'import.meta.url': META_URL },
  write: false,
  minifyWhitespace: true,
  legalComments: 'external',
  logLevel: 'warning',
  // What is left of import.meta is import.meta.resolve in src/util/worker.ts's tsx-only branch
  // (workers started from .ts sources), which never runs from the bundle.
  logOverride: { 'empty-import-meta': 'silent' },
};

/** Worker thread entries (under dist/) and their bundle files. */
const WORKERS = [
  ['block/compress/worker.js', 'worker.cjs'],
  ['emulator/vcpu/vcpu-worker.js', 'vcpu-worker.cjs'],
  ['emulator/riscv/jit/compile-worker.js', 'compile-worker.cjs'],
  ['emulator/accel/kvm/kvm-vcpu-worker.js', 'kvm-vcpu-worker.cjs'],
];

/** Files of an earlier build that a later build step replaces atomically (scripts/build-cli.js). */
const KEPT_UNTIL_REPLACED = ['oclif.manifest.json'];

/** The command table for oclif: the running bundle's COMMANDS. */
const INDEX_JS = "module.exports = require('./cli.cjs');\n";

/**
 * dist/bundle/package.json: the package's name, version and oclif configuration
 * (its command table is ./index.js here), of type commonjs.
 */
function bundlePackageJson(pkg) {
  const oclif = { ...pkg.oclif, commands: { ...pkg.oclif.commands, target: './index.js' } };
  const out = { name: pkg.name, version: pkg.version, description: pkg.description, type: 'commonjs', oclif };
  return `${JSON.stringify(out, null, 2)}\n`;
}

/**
 * JavaScript source as ASCII: each other character (esbuild escapes those of
 * strings and templates itself but leaves regular expression literals as
 * written) becomes its \\u escape, which means the same in a regular
 * expression. V8 then holds the source as one byte per character, half the
 * memory of a two-byte string and quicker to read and hash at start-up.
 */
function asciiOnly(text) {
  return text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * A CommonJS module's code inside its own module wrapper. Required by Node (which
 * wraps it again), the outer arrow sees that wrapper's arguments and runs the
 * function with them, so the file is an ordinary CommonJS module (oclif-manifest.js
 * and oclif load it that way). Compiled as a script (bin/tsemu.js), where there are
 * no such arguments, its value is the wrapper function itself: the launcher runs
 * it with a module of its own, and V8 compiles the text as read instead of a
 * wrapped copy of it (about 1 ms of start-up for 1.3 MB).
 */
function selfWrapped(code) {
  return [
    "((bundle) => (typeof arguments === 'object' ? bundle.apply(this, arguments) : bundle))(",
    `function (exports, require, module, __filename, __dirname) {${code}\n});\n`,
  ].join('');
}

async function writeAtomically(file, contents) {
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, contents);
  await rename(temp, file);
}

/**
 * Bundles `<root>/dist` into `<root>/dist/bundle`; returns the names of the files
 * written. Other files there (earlier bundles, a code cache) are removed, but for
 * the manifest (KEPT_UNTIL_REPLACED).
 */
export async function bundleCli(root) {
  const dist = path.join(root, 'dist');
  const outdir = path.join(dist, 'bundle');
  const cliFile = path.join(outdir, 'cli.cjs');
  const cli = await build({
    ...COMMON,
    stdin: {
      contents: [
        "export { run } from './cli.js';",
        "export { COMMANDS } from './commands/index.js';",
        "export { delayOptimization } from './util/tiering.js';",
      ].join('\n'),
      resolveDir: dist,
      sourcefile: 'bundle-entry.js',
    },
    outfile: cliFile,
    absWorkingDir: root,
    plugins: [lazyBuiltins, oclifWslUtils, oclifPatches, undiciApart],
  });
  const workers = await Promise.all(
    WORKERS.map(([entry, out]) =>
      build({ ...COMMON, entryPoints: [path.join(dist, entry)], outfile: path.join(outdir, out), absWorkingDir: root }),
    ),
  );
  const undici = await build({ ...COMMON, entryPoints: ['undici'], outfile: path.join(outdir, UNDICI_FILE), absWorkingDir: root });
  const outputs = [cli, ...workers, undici].flatMap((r) => r.outputFiles).map((f) => {
    if (!f.path.endsWith('.cjs')) return { path: f.path, contents: f.contents };
    const text = asciiOnly(shareNamespaces(builtinDefaults(f.text), f.path));
    return { path: f.path, contents: f.path === cliFile ? selfWrapped(text) : text };
  });
  outputs.push({ path: path.join(outdir, 'index.js'), contents: INDEX_JS });
  const pkg = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8'));
  outputs.push({ path: path.join(outdir, 'package.json'), contents: bundlePackageJson(pkg) });
  await mkdir(outdir, { recursive: true });
  for (const file of outputs) await writeAtomically(file.path, file.contents);
  const written = new Set(outputs.map((f) => path.basename(f.path)));
  for (const name of await readdir(outdir)) {
    if (!written.has(name) && !KEPT_UNTIL_REPLACED.includes(name)) await rm(path.join(outdir, name), { force: true });
  }
  return [...written];
}
