/**
 * The entry point of a vCPU worker thread: builds the Vcpu named by
 * workerData (a VcpuConfig) and runs it until the machine stops, then posts
 * { retired } to the main thread. An unexpected host error is posted as
 * { error } so the machine can report it instead of hanging.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Vcpu, type VcpuConfig } from './vcpu.js';

try {
  const retired = new Vcpu(workerData as VcpuConfig).run();
  parentPort!.postMessage({ retired });
} catch (err) {
  parentPort!.postMessage({ error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
}
