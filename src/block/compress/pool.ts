/**
 * A pool of worker threads that run the cluster codecs (worker.ts), so a converter
 * with several writes in flight compresses on every core at once. Workers start on
 * demand (or all at once through warm()), up to the number of available cores.
 *
 * Requests are queued and handed out in batches: dispatching waits for the current
 * microtask checkpoint, so the clusters a caller submits together (one write of many
 * clusters) are queued together; a free worker then takes up to MAX_BATCH requests
 * of one op and type from the head of the queue, fewer when the queue is short, so
 * every worker gets a share. One message per batch each way: per-message costs
 * (serialisation, wake-ups) otherwise rival compressing a 64 KiB cluster.
 *
 * Bytes: a request's data is read when its batch is sent, so the caller leaves it
 * alone until the request settles. Data in a SharedArrayBuffer is passed as it is
 * (the worker reads the caller's memory); the rest of a batch is copied into one
 * ArrayBuffer that is transferred, never cloned (cloning a view clones the whole buffer behind it,
 * and clusters are often views into multi-megabyte buffers); the caller's buffer is
 * never detached. Replies carry all of a batch's results in one transferred buffer,
 * except for 'compress-into': the worker writes each result into the request's
 * `into` view of a SharedArrayBuffer and the request resolves to a view of that,
 * so nothing is allocated or copied back on the caller's thread.
 *
 * A worker is unref'ed while idle, so an idle pool never keeps the process alive,
 * and ref'ed while it works, so pending work does. A worker that dies fails its
 * batch with the error and is replaced on demand.
 *
 * The worker file sits next to this module with this module's extension: .js in the
 * built dist/, .ts when running from sources under tsx (src/util/worker.ts starts it).
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { holdDefaultFlags } from '../../util/tiering.js';
import { siblingModule, startModuleWorker } from '../../util/worker.js';
import { ImageFormatError } from '../node.js';
import type { CompressionType } from './codec.js';

export type CodecOp = 'compress' | 'compress-into' | 'decompress' | 'load';

/** One batch: every piece gets `op` with `type`. */
export interface WorkerRequest {
  id: number;
  op: CodecOp;
  type: CompressionType;
  pieces: Uint8Array[];
  /** For decompress: the exact number of bytes each piece must produce. */
  outLengths: number[];
  /** For compress-into: where each piece's result goes (shared memory). */
  into: Array<Uint8Array | null>;
}

/** Per piece: its result's length in `data` (-1: null), or why it failed. */
export type PieceResult = number | { error: string; formatError: boolean };

export interface WorkerReply {
  id: number;
  /** The pieces' results back to back, in order. */
  data: Uint8Array;
  results: PieceResult[];
}

/** Most requests sent to a worker in one message. */
const MAX_BATCH = 8;

interface Pending {
  op: CodecOp;
  type: CompressionType;
  data: Uint8Array;
  outLength: number;
  into: Uint8Array | null;
  resolve: (r: Uint8Array | null) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  busy: { id: number; jobs: Pending[] } | null;
}

const NOTHING = new Uint8Array(0);

const WORKER_URL = siblingModule('worker', import.meta.url);

export class CodecPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private closed = false;
  private dispatchQueued = false;

  constructor(readonly size = Math.max(1, availableParallelism())) {}

  /**
   * One request: `outLength` is what a decompression must produce; `into` (op
   * compress-into: a view of a SharedArrayBuffer at least as long as `data`)
   * receives the compressed bytes.
   */
  run(op: CodecOp, type: CompressionType, data: Uint8Array, outLength = 0, into: Uint8Array | null = null): Promise<Uint8Array | null> {
    if (this.closed) return Promise.reject(new Error('the compression worker pool is closed'));
    if (op === 'compress-into' && !(into && into.buffer instanceof SharedArrayBuffer && into.length >= data.length)) {
      return Promise.reject(new Error('compress-into needs a shared output view as long as the data'));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ op, type, data, outLength, into, resolve, reject });
      if (!this.dispatchQueued) {
        this.dispatchQueued = true;
        queueMicrotask(() => {
          this.dispatchQueued = false;
          this.dispatch();
        });
      }
    });
  }

  /**
   * Starts every worker now and has each load `type`'s codec, so that thread start-up
   * and codec loading overlap whatever the caller does before its first request.
   * Failures are left to the real requests to report.
   */
  warm(type: CompressionType): void {
    if (this.closed) return;
    while (this.slots.length < this.size) {
      const slot = this.spawn();
      this.send(slot, [{ op: 'load', type, data: NOTHING, outLength: 0, into: null, resolve: () => {}, reject: () => {} }]);
    }
  }

  /** Stops every worker; queued and running requests fail. */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new Error('the compression worker pool is closed'));
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private dispatch(): void {
    while (this.queue.length > 0 && !this.closed) {
      let slot = this.slots.find((s) => !s.busy);
      if (!slot && this.slots.length < this.size) slot = this.spawn();
      if (!slot) return;
      this.send(slot, this.takeBatch());
    }
  }

  /** The head of the queue: requests of one op and type, an even share of the queue per worker. */
  private takeBatch(): Pending[] {
    const first = this.queue[0]!;
    const share = Math.min(MAX_BATCH, Math.ceil(this.queue.length / this.size));
    let n = 1;
    while (n < share && this.queue[n]!.op === first.op && this.queue[n]!.type === first.type) n++;
    return this.queue.splice(0, n);
  }

  private send(slot: Slot, jobs: Pending[]): void {
    const id = this.nextId++;
    const copied = jobs.filter((j) => !(j.data.buffer instanceof SharedArrayBuffer));
    const packed = new Uint8Array(copied.reduce((n, j) => n + j.data.length, 0));
    let at = 0;
    const pieces = jobs.map((j) => {
      if (j.data.buffer instanceof SharedArrayBuffer) return j.data;
      packed.set(j.data, at);
      at += j.data.length;
      return packed.subarray(at - j.data.length, at);
    });
    const req: WorkerRequest = {
      id, op: jobs[0]!.op, type: jobs[0]!.type, pieces, outLengths: jobs.map((j) => j.outLength), into: jobs.map((j) => j.into),
    };
    slot.busy = { id, jobs };
    slot.worker.ref();
    slot.worker.postMessage(req, [packed.buffer]);
  }

  private spawn(): Slot {
    // The worker's first reply comes once it has loaded its codec and Node's modules for it.
    const releaseFlags = holdDefaultFlags();
    const slot: Slot = { worker: startModuleWorker(WORKER_URL), busy: null };
    slot.worker.unref();
    slot.worker.on('message', (reply: WorkerReply) => {
      releaseFlags();
      const batch = slot.busy;
      slot.busy = null;
      slot.worker.unref();
      if (batch && batch.id === reply.id) settle(batch.jobs, reply);
      this.dispatch();
    });
    const fail = (e: Error): void => {
      releaseFlags();
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      for (const job of slot.busy?.jobs ?? []) job.reject(new Error(`compression worker failed: ${e.message}`));
      slot.busy = null;
      this.dispatch();
    };
    slot.worker.on('error', fail);
    slot.worker.on('exit', (code) => fail(new Error(`exited with code ${code}`)));
    this.slots.push(slot);
    return slot;
  }
}

/** Hands each request of a batch its result: a view into the reply's buffer (or its own data), null, or its error. */
function settle(jobs: Pending[], reply: WorkerReply): void {
  let at = 0;
  jobs.forEach((job, i) => {
    const r = reply.results[i]!;
    if (typeof r !== 'number') job.reject(r.formatError ? new ImageFormatError(r.error) : new Error(r.error));
    else if (r < 0) job.resolve(null);
    else if (job.op === 'compress-into') job.resolve(job.into!.subarray(0, r));
    else {
      job.resolve(reply.data.subarray(at, at + r));
      at += r;
    }
  });
}
