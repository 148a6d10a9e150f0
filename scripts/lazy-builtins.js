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
 */
import { builtinModules, createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** Built-ins that a short command usually does not call (and whose loading costs most). */
const LAZY = ['child_process', 'crypto', 'dgram', 'http', 'https', 'net', 'perf_hooks', 'readline', 'tls', 'worker_threads', 'zlib'];

const NAMESPACE = 'lazy-builtin';

/** Source of the stand-in for built-in `name`: a CommonJS module of forwarding accessors. */
function standIn(name) {
  const names = Object.getOwnPropertyNames(require(`node:${name}`)).filter((key) => key !== '__esModule');
  return [
    'let real;',
    `const load = () => real ??= require(${JSON.stringify(`node:${name}`)});`,
    `for (const key of ${JSON.stringify(names)}) {`,
    '  Object.defineProperty(exports, key, {',
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
    build.onLoad({ filter: /.*/, namespace: NAMESPACE }, (args) => ({ contents: standIn(args.path), loader: 'js' }));
  },
};
