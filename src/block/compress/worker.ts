/**
 * A compression worker thread: runs codec.ts for the pool in pool.ts. Each message
 * is one batch {id, op, type, pieces, outLengths}; the pieces are processed in order
 * and the reply {id, data, results} carries their results back to back in one
 * transferred buffer (for 'compress-into': the codec writes straight into the
 * piece's `into` view of shared memory), with per piece the result's length (-1
 * when compression would not shrink the data, and for 'load', which only loads the
 * codec) or its error, so one bad piece fails only its own request.
 */
import { parentPort } from 'node:worker_threads';
import { ImageFormatError } from '../node.js';
import { decodeCluster, encodeCluster, loadCodec } from './codec.js';
import type { PieceResult, WorkerReply, WorkerRequest } from './pool.js';

if (!parentPort) throw new Error('compress/worker must run in a worker thread');
const port = parentPort;

function runPiece(req: WorkerRequest, i: number): Promise<Uint8Array | null> {
  if (req.op === 'compress' || req.op === 'compress-into') return encodeCluster(req.type, req.pieces[i]!, req.into[i] ?? undefined);
  if (req.op === 'decompress') return decodeCluster(req.type, req.pieces[i]!, req.outLengths[i]!);
  return loadCodec(req.type).then(() => null);
}

port.on('message', async (req: WorkerRequest) => {
  const outputs: Uint8Array[] = [];
  const results: PieceResult[] = [];
  for (let i = 0; i < req.pieces.length; i++) {
    try {
      const out = await runPiece(req, i);
      if (out && req.op !== 'compress-into') outputs.push(out);
      results.push(out ? out.length : -1);
    } catch (e) {
      results.push({ error: (e as Error).message, formatError: e instanceof ImageFormatError });
    }
  }
  const data = new Uint8Array(outputs.reduce((n, o) => n + o.length, 0));
  let at = 0;
  for (const o of outputs) {
    data.set(o, at);
    at += o.length;
  }
  const reply: WorkerReply = { id: req.id, data, results };
  port.postMessage(reply, [data.buffer]);
});
