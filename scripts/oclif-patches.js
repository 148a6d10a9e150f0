/**
 * esbuild plugin for the CLI bundle: small source patches of @oclif/core that
 * take start-up work off every command without changing what a command does,
 * prints or returns. Each patch replaces one exact piece of an oclif file; if
 * that text is not found exactly once (another oclif version), the build fails
 * naming the patch, so a patch never silently stops applying or applies twice.
 *
 * The patches (measured on `img info`, CPU per command):
 *   - command order: Plugin.load sorts the manifest's commands with
 *     String.prototype.localeCompare, whose first call sets up ICU's collator
 *     (about 7 ms). Command ids are compared by code unit instead. The order only
 *     decides which of two equal ids wins inside oclif; help and listings sort
 *     again by code unit themselves (oclif's sortBy), and the startup test checks
 *     that both orders agree for tsemu's ids.
 *   - debug instances: oclif's logger makes a `debug` instance per namespace at
 *     start-up, and making one evaluates debug and supports-color, which load
 *     node:tty (and with it node:net and Node's streams) and create
 *     process.stderr to ask whether it is a terminal (about 4 ms when stderr is a
 *     pipe). The logger gets a stand-in per namespace that does nothing while
 *     DEBUG is unset (where debug would print nothing either: no namespace
 *     oclif uses ends in `*`, the one pattern debug enables without DEBUG) and
 *     otherwise makes the real instance on the first call and hands it every
 *     call, as before.
 *   - terminal widths: oclif's screen module measures stdout and stderr when it
 *     is evaluated, which creates both streams even for a command that prints
 *     nothing. The widths become getters that measure on first use (the value
 *     is the same, taken when oclif first wraps text rather than at start-up).
 *   - progress action: oclif's ux module makes its spinner-or-simple action
 *     object when it is evaluated, asking whether stderr is a terminal, which
 *     creates process.stderr (loading node:net when stderr is a pipe, about
 *     2 ms). It is made on first use instead, with the same choice; tsemu's
 *     commands never use it and oclif touches it only when a command fails.
 *   - JSON reads: oclif reads every JSON file it loads (package.json, the
 *     manifest, the user's theme and plugin list, most of which do not exist)
 *     with fs/promises' readFile: an open, a stat, reads and a close, each a
 *     round trip through libuv's thread pool, about 0.7 ms of CPU per file and
 *     five files per command (the first also starts the pool). They are read
 *     with readFileSync instead: the same text or the same error (ENOENT for a
 *     missing file, which oclif's callers catch as before), from an async
 *     function still, so callers see a promise as before.
 *   - final flush: when a command has finished, oclif writes '' to stdout and
 *     waits for 'drain' if that write reports a full buffer, racing a 10 s timer
 *     (a timer, a listener and a write: about 0.7 ms). The write reports a full
 *     buffer only when stdout already holds its high-water mark of unwritten
 *     bytes, so that is now asked first and nothing is done otherwise (a
 *     command whose output is all written, or that printed nothing, ends at once
 *     as before).
 */
import { readFile } from 'node:fs/promises';

/** Each patch: the oclif file (path ending), the exact text, its replacement. */
const PATCHES = [
  {
    name: 'command order',
    file: 'lib/config/plugin.js',
    find: '.sort((a, b) => a.id.localeCompare(b.id));',
    replace: '.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));',
  },
  {
    name: 'debug instances',
    file: 'lib/logger.js',
    find: 'const debug_1 = __importDefault(require("debug"));',
    replace: [
      'const debug_1 = { default: (namespace) => {',
      '    let real;',
      '    return (...args) => {',
      '        if (real === undefined && !process.env.DEBUG) return;',
      '        real ??= require("debug")(namespace);',
      '        return real(...args);',
      '    };',
      '} };',
    ].join('\n'),
  },
  {
    name: 'terminal widths',
    file: 'lib/screen.js',
    find: [
      'exports.stdtermwidth = columns || termwidth(process.stdout);',
      'exports.errtermwidth = columns || termwidth(process.stderr);',
    ].join('\n'),
    replace: [
      'let stdWidth, errWidth;',
      "Object.defineProperty(exports, 'stdtermwidth', { enumerable: true, get: () => (stdWidth ??= columns || termwidth(process.stdout)) });",
      "Object.defineProperty(exports, 'errtermwidth', { enumerable: true, get: () => (errWidth ??= columns || termwidth(process.stderr)) });",
    ].join('\n'),
  },
  {
    name: 'progress action',
    file: 'lib/ux/index.js',
    find: [
      'const ACTION_TYPE = (Boolean(process.stderr.isTTY) &&',
      '    !process.env.CI &&',
      "    !['dumb', 'emacs-color'].includes(process.env.TERM) &&",
      "    'spinner') ||",
      "    'simple';",
      "exports.action = ACTION_TYPE === 'spinner' ? new spinner_1.default() : new simple_1.default();",
      'exports.ux = {',
      '    action: exports.action,',
    ].join('\n'),
    replace: [
      'let action;',
      'function getAction() {',
      '    if (action === undefined) {',
      '        const ACTION_TYPE = (Boolean(process.stderr.isTTY) &&',
      '            !process.env.CI &&',
      "            !['dumb', 'emacs-color'].includes(process.env.TERM) &&",
      "            'spinner') ||",
      "            'simple';",
      "        action = ACTION_TYPE === 'spinner' ? new spinner_1.default() : new simple_1.default();",
      '    }',
      '    return action;',
      '}',
      "Object.defineProperty(exports, 'action', { enumerable: true, get: getAction });",
      'exports.ux = {',
      '    get action() { return getAction(); },',
    ].join('\n'),
  },
  {
    name: 'final flush',
    file: 'lib/flush.js',
    find: ['async function flush(ms = 10_000) {', '    await timeout(_flush(), ms);'].join('\n'),
    replace: [
      'async function flush(ms = 10_000) {',
      '    if (process.stdout.writableLength < process.stdout.writableHighWaterMark) return;',
      '    await timeout(_flush(), ms);',
    ].join('\n'),
  },
  {
    name: 'JSON reads',
    file: 'lib/util/fs.js',
    find: "const contents = await (0, promises_1.readFile)(path, 'utf8');",
    replace: "const contents = (0, node_fs_1.readFileSync)(path, 'utf8');",
  },
];

/** A filter matching @oclif/core's `file` (a path with / separators) on any platform. */
function oclifFileFilter(file) {
  const parts = ['@oclif', 'core', ...file.split('/')].map((p) => p.replace(/[.\-]/g, '\\$&'));
  return new RegExp(`[\\\\/]${parts.join('[\\\\/]')}$`);
}

/** `source` with `patch` applied; throws unless its text occurs exactly once. */
function applyPatch(source, patch) {
  const parts = source.split(patch.find);
  if (parts.length !== 2) {
    throw new Error(`oclif-patches: '${patch.name}' expects its text once in @oclif/core/${patch.file}, found ${parts.length - 1}`);
  }
  return parts.join(patch.replace);
}

export const oclifPatches = {
  name: 'oclif-patches',
  setup(build) {
    const applied = new Set();
    for (const patch of PATCHES) {
      build.onLoad({ filter: oclifFileFilter(patch.file) }, async (args) => {
        applied.add(patch.name);
        return { contents: applyPatch(await readFile(args.path, 'utf8'), patch), loader: 'js' };
      });
    }
    build.onEnd((result) => {
      if (result.errors.length > 0) return;
      const missing = PATCHES.filter((p) => !applied.has(p.name)).map((p) => p.name);
      if (missing.length > 0) throw new Error(`oclif-patches: no bundled file for ${missing.join(', ')}`);
    });
  },
};
