/**
 * A compression worker thread: runs codec.ts for the pool in pool.ts. Each message
 * is one request {id, op, type, data, outLength}; the reply is {id, result} (null
 * when compression would not shrink the data) or {id, error, formatError}. The reply's
 * buffer is transferred rather than copied where it can be.
 */
import { parentPort } from 'node:worker_threads';
import { ImageFormatError } from '../node.js';
import { decodeCluster, encodeCluster } from './codec.js';
import type { WorkerReply, WorkerRequest } from './pool.js';

if (!parentPort) throw new Error('compress/worker must run in a worker thread');
const port = parentPort;

port.on('message', (req: WorkerRequest) => {
  const work = req.op === 'compress' ? encodeCluster(req.type, req.data) : decodeCluster(req.type, req.data, req.outLength);
  work.then(
    (result: Uint8Array | null) => {
      // Transfer the result's memory when it owns all of it; a view into a shared
      // (e.g. pooled) buffer is copied instead.
      const own = result && result.byteOffset === 0 && result.byteLength === result.buffer.byteLength ? result : result?.slice() ?? null;
      const reply: WorkerReply = { id: req.id, result: own };
      port.postMessage(reply, own ? [own.buffer as ArrayBuffer] : []);
    },
    (e: Error) => {
      const reply: WorkerReply = { id: req.id, error: e.message, formatError: e instanceof ImageFormatError };
      port.postMessage(reply);
    },
  );
});
