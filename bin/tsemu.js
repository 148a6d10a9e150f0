#!/bin/sh
":" //; if [ -n "$NODE_EXTRA_CA_CERTS" ]; then export TSEMU_EXTRA_CA_CERTS="$NODE_EXTRA_CA_CERTS"; unset NODE_EXTRA_CA_CERTS; fi; exec node "$0" "$@"
/**
 * The tsemu command: runs the bundled CLI, dist/bundle/cli.cjs, which `npm run
 * build` makes (the `prepare` script runs it on `npm install`, `npm test` first).
 *
 * This file is both a shell script and JavaScript. Run as a program (`tsemu`,
 * `npx tsemu`, node_modules/.bin/tsemu), /bin/sh reads the first two lines and
 * execs `node` on this same file; Node skips the first line and reads the second
 * as a string and a comment. The shell step exists for NODE_EXTRA_CA_CERTS
 * (often set behind proxies): Node 20 parses that file, and its own root
 * certificates, at every start-up, about 50 ms of CPU that only HTTPS images
 * use. So the shell moves the variable to TSEMU_EXTRA_CA_CERTS; here it is put
 * back (programs tsemu starts see the user's environment unchanged) and the
 * file is handed to the CLI, whose HTTPS connections add its certificates to
 * Node's default ones on first use (src/block/protocols/tls-trust.ts). Run as
 * `node bin/tsemu.js`, Node loads the file itself and nothing is deferred.
 *
 * Start-up is most of a short command's time, so the bundle is compiled with
 * node:vm from V8's code cache, dist/bundle/cli.cjs.cache: the bytecode of every
 * function that typical commands ran when the build made it, so neither parsing
 * nor compiling those functions happens again. A cache V8 rejects (another Node
 * version, other V8 flags, a bundle rebuilt since) or a missing one only costs
 * that time back. The compiled module is put in require.cache under the bundle's
 * name, so oclif loading the command table (dist/bundle/index.js requires
 * cli.cjs) gets this copy. With TSEMU_WRITE_CODE_CACHE=1 in the environment the
 * run writes the cache when the process exits, adding what it compiled to what
 * it loaded (the build runs a few commands that way: scripts/build-cli.js).
 *
 * `img` and `io` commands are short-lived: most finish in well under a second.
 * For them V8 optimizes a function only after 16 times its default run time
 * (the bundle's delayOptimization, src/util/tiering.ts). That is a V8 flag, and V8
 * accepts a code cache only under the flags it was made with, Node's cache of its
 * own built-in modules included: so the flag is set once the bundle is compiled
 * and evaluated (by then oclif has loaded fs/promises and made process.stdout,
 * which every command uses: each built-in first loaded after the change
 * compiles from source, fs/promises 1.0 -> 5.5 ms of CPU), and not in the runs
 * that write the cache.
 *
 * Those short commands also size libuv's thread pool (their file I/O, zstd) to
 * the machine: at most one thread per core, up to libuv's default of 4, unless
 * the user set UV_THREADPOOL_SIZE. With more pool threads than cores, a thread
 * preempted while it holds the pool's lock stalls the main thread handing it
 * work (measured on 2 cores, 1 GiB raw -> qcow2: 0.41 -> 0.37 s with 2 threads
 * instead of 4). libuv reads the variable when the pool first starts, which is
 * after this file runs.
 *
 * This file is CommonJS (bin/package.json says so): as the entry point, an ES
 * module would make Node set up its ESM loader first, about 25 ms of CPU that
 * nothing here needs.
 */
const { existsSync, readFileSync, renameSync, statSync, writeFileSync } = require('node:fs');
const Module = require('node:module');
const { availableParallelism } = require('node:os');
const path = require('node:path');
const vm = require('node:vm');

const BUNDLE = path.join(__dirname, '../dist/bundle/cli.cjs');
const CACHE = `${BUNDLE}.cache`;
const SHORT_LIVED = ['img', 'io'];

if (SHORT_LIVED.includes(process.argv[2]) && process.env.UV_THREADPOOL_SIZE === undefined) {
  process.env.UV_THREADPOOL_SIZE = String(Math.min(4, availableParallelism()));
}

if (!existsSync(BUNDLE)) {
  process.stderr.write('tsemu: the CLI is not built: run `npm run build` (npm install runs it)\n');
  process.exit(1);
}

/**
 * V8 checks a cache against the source's length only: one older than the bundle
 * (left by an interrupted build) is not used.
 */
function cacheIsCurrent() {
  const cache = statSync(CACHE, { throwIfNoEntry: false });
  return cache !== undefined && cache.mtimeMs >= statSync(BUNDLE).mtimeMs;
}

/**
 * Compiles and runs the bundle as a CommonJS module; returns its exports. The
 * bundle is ASCII by construction (scripts/bundle.js), so reading it as latin1
 * gives the same characters as UTF-8, for about 2 ms less CPU on Node 20 (no
 * UTF-8 decoding pass over 1.3 MB); Node keeps a string that large outside V8's
 * heap. The file carries its own CommonJS wrapper function (bundle.js): run as a
 * script its value is that function, so the text compiles as read, without
 * first copying it into a wrapped string (about 1 ms).
 */
function loadBundle() {
  const source = readFileSync(BUNDLE, 'latin1');
  const cachedData = cacheIsCurrent() ? readFileSync(CACHE) : undefined;
  const script = new vm.Script(source, { filename: BUNDLE, cachedData });
  if (process.env.TSEMU_WRITE_CODE_CACHE === '1') {
    process.on('exit', () => {
      writeFileSync(`${CACHE}.${process.pid}.tmp`, script.createCachedData());
      renameSync(`${CACHE}.${process.pid}.tmp`, CACHE);
    });
  }
  const bundleRequire = Module.createRequire(BUNDLE);
  const mod = new Module(BUNDLE);
  mod.filename = BUNDLE;
  bundleRequire.cache[BUNDLE] = mod;
  script.runInThisContext()(mod.exports, bundleRequire, mod, BUNDLE, path.dirname(BUNDLE));
  mod.loaded = true;
  return mod.exports;
}

/**
 * The NODE_EXTRA_CA_CERTS file the shell step kept from Node, if any (undefined
 * when Node loaded one itself). Restores the user's environment either way.
 */
function takeDeferredCaCerts() {
  const file = process.env.TSEMU_EXTRA_CA_CERTS;
  delete process.env.TSEMU_EXTRA_CA_CERTS;
  if (!file || process.env.NODE_EXTRA_CA_CERTS) return undefined;
  process.env.NODE_EXTRA_CA_CERTS = file;
  return file;
}

const cli = loadBundle();
if (process.env.TSEMU_WRITE_CODE_CACHE !== '1' && SHORT_LIVED.includes(process.argv[2])) cli.delayOptimization();
// A rejection is reported as an uncaught error with exit status 1.
void cli.run(process.argv.slice(2), { extraCaCerts: takeDeferredCaCerts() });
