/**
 * Starts a worker thread from an ES module that sits next to its caller: the
 * built .js file in dist/ (or the bundle), or the .ts source when running
 * under tsx. Node 20 does not carry tsx's loader into workers, so a .ts module
 * is started through a small bootstrap that registers tsx's loader first.
 * Workers get none of the parent's execArgv (some options, such as
 * --input-type, are refused in workers). Used by every layer that runs
 * workers (block compression, vCPU threads), so it depends on none of them.
 */
import { Worker } from 'node:worker_threads';

export function startModuleWorker(url: URL, workerData?: unknown): Worker {
  if (!url.pathname.endsWith('.ts')) return new Worker(url, { execArgv: [], workerData });
  const boot =
    `import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))};\n` +
    `register();\nawait import(${JSON.stringify(url.href)});\n`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(boot)}`), { execArgv: [], workerData });
}

/** The URL of module `name` (without extension) next to the module at `base`, with base's extension. */
export function siblingModule(name: string, base: string): URL {
  return new URL(`./${name}${base.slice(base.lastIndexOf('.'))}`, base);
}
