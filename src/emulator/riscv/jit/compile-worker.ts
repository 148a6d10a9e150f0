/**
 * The entry point of the JIT's compile worker (compiler.ts): builds and
 * compiles each batch it is sent and posts the module back, then counts it
 * in the shared `done` word. A batch that fails is reported as { error }
 * (its blocks stay on the interpreter); the worker carries on.
 */
import { parentPort } from 'node:worker_threads';
import { buildBatch, unpackBlocks } from './batch-build.js';
import type { CompileReply, CompileRequest, CompileWorkerInit } from './compiler.js';

parentPort!.once('message', ({ port, done, target }: CompileWorkerInit) => {
  port.on('message', ({ id, packed }: CompileRequest) => {
    const t0 = performance.now();
    let reply: CompileReply;
    try {
      const bytes = buildBatch(target, unpackBlocks(packed));
      reply = { id, module: new WebAssembly.Module(bytes), size: bytes.length, millis: performance.now() - t0 };
    } catch (err) {
      reply = { id, error: String(err) };
    }
    port.postMessage(reply);
    Atomics.add(done, 0, 1);
  });
});
