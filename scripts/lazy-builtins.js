/**
 * esbuild plugin for the CLI bundle: Node built-in modules that only some
 * commands use are loaded on first use instead of when the bundle starts.
 *
 * A bundle evaluates every module it reaches through static imports when the
 * command that needs them starts, and each `import ... from 'node:crypto'` (or
 * `require('node:crypto')` in a dependency) loads that built-in then, whether the
 * command calls it or not: `img info` loaded crypto, http, worker_threads,
 * readline and perf_hooks, about 10 ms of CPU, for a disk-UUID generator, the
 * HTTP protocol, a thread pool and oclif code paths it never runs. This plugin
 * resolves the built-ins in LAZY to a small stand-in module whose properties are
 * getters (and setters) that load the real module on first access and forward to
 * it, so a function or class taken from it is the real one, looked up when used.
 * The stand-in lists the names the built-in exports on the Node that builds (a
 * name a later Node adds is not forwarded); what code sees is otherwise the same.
 * It loads the built-in under V8's default flags (src/util/tiering.ts), so from
 * Node's code cache even when a short-lived command has changed a flag.
 *
 * The same stand-in serves the CommonJS packages in LAZY_PACKAGES, which are
 * evaluated at start-up for code paths most commands never take: oclif requires
 * tinyglobby (with fdir and picomatch) to find command files by pattern, where
 * tsemu has an explicit command table, and minimatch for wildcard plugin names in
 * development setups (about 1-2 ms of CPU per command); oclif's colour theme
 * loads supports-color, which asks node:tty (loading node:net and Node's
 * streams with it, about 4 ms) whether stdout and stderr are terminals, and
 * oclif only asks supports-color when it colours text (help, errors); oclif's
 * theme loads ansis, which works out at load
 * whether to colour (asking process.stdout whether it is a terminal), while
 * oclif only calls ansis when it colours text; oclif's errors and help load the
 * text layout packages (wrap-ansi with its colour tables, string-width,
 * widest-line, indent-string, clean-stack), its spinner loads cli-spinners, its
 * configuration ejs (templates) and lilconfig (config files), together about 1 ms,
 * for output a successful img command never prints and files it never reads.
 * A lazy package's exports are computed on first use
 * instead of at start-up (supports-color reads the same environment and
 * terminals then). The real package is still bundled
 * (resolved from where the importer would have found it) and evaluated on first
 * use; the stand-in lists the exports of that copy, own and inherited (ansis's
 * colour names are getters on its export's prototype). A package that exports a
 * function (wrap-ansi) gets a stand-in function that calls the real one.
 */
import { builtinModules, createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);

/** Built-ins that a short command usually does not call (and whose loading costs most). */
const LAZY = ['child_process', 'crypto', 'dgram', 'http', 'https', 'net', 'perf_hooks', 'readline', 'tls', 'worker_threads', 'zlib'];

/** Packages that start-up loads and most of tsemu's commands never call. */
const LAZY_PACKAGES = [
  'ansis',
  'clean-stack',
  'cli-spinners',
  'ejs',
  'indent-string',
  'lilconfig',
  'minimatch',
  'string-width',
  'supports-color',
  'tinyglobby',
  'widest-line',
  'wrap-ansi',
];

const NAMESPACE = 'lazy-builtin';
const PACKAGE_NAMESPACE = 'lazy-package';

/** Names every function has of its own, which a stand-in function has of its own too. */
const FUNCTION_OWN = ['length', 'name', 'prototype', 'arguments', 'caller'];

/** The property names of `exported` and of its prototypes, up to Object.prototype or Function.prototype. */
function propertyNames(exported) {
  const names = new Set();
  for (let o = exported; o !== null && o !== Object.prototype && o !== Function.prototype; o = Object.getPrototypeOf(o)) {
    for (const key of Object.getOwnPropertyNames(o)) names.add(key);
  }
  return [...names].filter((key) => key !== '__esModule' && !(typeof exported === 'function' && FUNCTION_OWN.includes(key)));
}

/**
 * Source of the stand-in for module `specifier` (whose exports are `real`): a
 * CommonJS module of forwarding accessors. A module that exports a function
 * gets a function that calls (or constructs) the real one, with the accessors
 * for the function's properties. `loading` is the expression that loads it.
 */
function standIn(specifier, real, loading = `require(${JSON.stringify(specifier)})`) {
  if (typeof real !== 'object' && typeof real !== 'function') throw new Error(`lazy-builtins: '${specifier}' exports a ${typeof real}, not an object or a function`);
  if (real === null) throw new Error(`lazy-builtins: '${specifier}' exports null`);
  const names = propertyNames(real);
  const target =
    typeof real === 'function'
      ? 'module.exports = function (...args) { return new.target === undefined ? load().apply(this, args) : Reflect.construct(load(), args, new.target); };'
      : 'exports;';
  return [
    'let real;',
    `const load = () => real ??= ${loading};`,
    `const target = ${target}`,
    `for (const key of ${JSON.stringify(names)}) {`,
    '  Object.defineProperty(target, key, {',
    '    get: () => load()[key],',
    '    set: (value) => { load()[key] = value; },',
    '    enumerable: true,',
    '  });',
    '}',
  ].join('\n');
}

export const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(build) {
    for (const name of LAZY) {
      if (!builtinModules.includes(name)) throw new Error(`lazy-builtins: '${name}' is not a Node built-in`);
    }
    const filter = new RegExp(`^(node:)?(${LAZY.join('|')})$`);
    build.onResolve({ filter }, (args) => {
      const name = args.path.replace(/^node:/, '');
      // The stand-in's own require of the built-in stays a plain require.
      if (args.namespace === NAMESPACE) return { path: args.path, external: true };
      return { path: name, namespace: NAMESPACE };
    });
    // A built-in loads under V8's default flags, so from Node's code cache (src/util/tiering.ts).
    build.onLoad({ filter: /.*/, namespace: NAMESPACE }, (args) => {
      const specifier = JSON.stringify(`node:${args.path}`);
      const loading = `require('./util/tiering.js').underDefaultFlags(() => require(${specifier}))`;
      return {
        contents: standIn(`node:${args.path}`, require(`node:${args.path}`), loading),
        resolveDir: path.join(build.initialOptions.absWorkingDir, 'dist'),
        loader: 'js',
      };
    });

    build.onResolve({ filter: new RegExp(`^(${LAZY_PACKAGES.join('|')})$`) }, (args) => {
      // The stand-in's own require is the real package, found from the original importer's folder.
      if (args.namespace === PACKAGE_NAMESPACE) return undefined;
      const from = createRequire(path.join(args.resolveDir, 'index.js'));
      // One stand-in per copy of the package (its resolved file).
      return { path: from.resolve(args.path), namespace: PACKAGE_NAMESPACE, pluginData: { name: args.path, from } };
    });
    build.onLoad({ filter: /.*/, namespace: PACKAGE_NAMESPACE }, (args) => {
      const { name, from } = args.pluginData;
      return { contents: standIn(name, from(name)), resolveDir: path.dirname(args.path), loader: 'js' };
    });
  },
};
