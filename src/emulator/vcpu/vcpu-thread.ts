/**
 * Starts a vCPU on its own worker thread (vcpu-worker.ts, next to this
 * module: .js when built or bundled, .ts under tsx) and reports how it ended:
 * the instructions it retired, or the host error that ended it (a thread that
 * dies without a word is reported as an error too).
 */
import type { Worker } from 'node:worker_threads';
import { siblingModule, startModuleWorker } from './start-worker.js';
import type { VcpuConfig } from './vcpu.js';

export type VcpuEnd = { retired: number } | { error: string };

export interface VcpuThread {
  worker: Worker;
  ended: Promise<VcpuEnd>;
}

export function startVcpuThread(config: VcpuConfig): VcpuThread {
  const worker = startModuleWorker(siblingModule('vcpu-worker', import.meta.url), config);
  const ended = new Promise<VcpuEnd>((resolve) => {
    let result: VcpuEnd | undefined;
    worker.on('message', (message: VcpuEnd) => (result = message));
    worker.on('error', (err) => (result = { error: err.stack ?? err.message }));
    worker.on('exit', (code) => resolve(result ?? { error: `vCPU ${config.hart} thread exited with code ${code}` }));
  });
  return { worker, ended };
}
