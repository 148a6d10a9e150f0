/**
 * esbuild plugin for the CLI bundle: what oclif imports as wsl-utils.
 *
 * At every start-up oclif asks wsl-utils whether it runs under WSL (isWsl, for
 * config.platform); only on Windows does it ask for PowerShell's path. Evaluating
 * wsl-utils also evaluates powershell-utils, and both promisify child_process's
 * execFile at module level, which loads child_process: about 4 ms of CPU per
 * command for code that never runs on Linux. For imports of wsl-utils from
 * @oclif/core, this plugin substitutes a module with the two exports oclif uses:
 * isWsl straight from is-wsl (which is what wsl-utils re-exports) and
 * powerShellPath, which loads the real wsl-utils when called. If oclif comes to
 * use another export, the build fails on the missing name.
 */
import path from 'node:path';

const NAMESPACE = 'oclif-wsl-utils';

const SUBSTITUTE = [
  "export { default as isWsl } from 'is-wsl';",
  "export const powerShellPath = async () => (await import('wsl-utils')).powerShellPath();",
].join('\n');

export const oclifWslUtils = {
  name: 'oclif-wsl-utils',
  setup(build) {
    build.onResolve({ filter: /^wsl-utils$/ }, (args) => {
      // The substitute's own import of wsl-utils, and anyone else's, is the real package.
      if (args.namespace === NAMESPACE || !/[\\/]@oclif[\\/]core[\\/]/.test(args.importer)) return undefined;
      return { path: args.importer, namespace: NAMESPACE };
    });
    build.onLoad({ filter: /.*/, namespace: NAMESPACE }, (args) => ({
      contents: SUBSTITUTE,
      resolveDir: path.dirname(args.path),
      loader: 'js',
    }));
  },
};
