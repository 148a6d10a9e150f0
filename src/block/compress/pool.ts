/**
 * A pool of worker threads that run the cluster codecs (worker.ts), so a converter
 * with several writes in flight compresses on every core at once. Workers start on
 * demand, up to the number of available cores, and each runs one request at a time;
 * further requests wait in a queue. A worker is unref'ed while idle, so an idle pool
 * never keeps the process alive, and ref'ed while it works, so pending work does.
 * A worker that dies fails its request with the error and is replaced on demand.
 *
 * Request bytes travel as their own ArrayBuffer, transferred (not cloned): cloning
 * a view clones the whole buffer behind it, and callers pass clusters that are
 * views into multi-megabyte request buffers. The one copy made here is the size of
 * the cluster, and the caller's buffer is never detached.
 *
 * The worker file sits next to this module with this module's extension: .js in the
 * built dist/, .ts when running from sources under tsx. Node 20 does not carry tsx's
 * loader into workers, so a .ts worker is started through a small bootstrap that
 * registers tsx's loader first. Workers get no execArgv of the parent's (some of its
 * options are refused in workers).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ImageFormatError } from '../node.js';
import type { CompressionType } from './codec.js';

export interface WorkerRequest {
  id: number;
  op: 'compress' | 'decompress';
  type: CompressionType;
  data: Uint8Array;
  /** For decompress: the exact number of bytes to produce. */
  outLength: number;
}

export type WorkerReply =
  | { id: number; result: Uint8Array | null; error?: undefined }
  | { id: number; error: string; formatError: boolean };

interface Pending {
  req: WorkerRequest;
  resolve: (r: Uint8Array | null) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  busy: Pending | null;
}

const WORKER_URL = new URL(`./worker${import.meta.url.slice(import.meta.url.lastIndexOf('.'))}`, import.meta.url);

function startWorker(): Worker {
  // No inherited execArgv: options such as --input-type are not valid for a worker.
  if (!WORKER_URL.pathname.endsWith('.ts')) return new Worker(WORKER_URL, { execArgv: [] });
  const boot =
    `import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))};\n` +
    `register();\nawait import(${JSON.stringify(WORKER_URL.href)});\n`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(boot)}`), { execArgv: [] });
}

export class CodecPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private closed = false;

  constructor(readonly size = Math.max(1, availableParallelism())) {}

  run(op: WorkerRequest['op'], type: CompressionType, data: Uint8Array, outLength = 0): Promise<Uint8Array | null> {
    if (this.closed) return Promise.reject(new Error('the compression worker pool is closed'));
    return new Promise((resolve, reject) => {
      const own = new Uint8Array(data); // a copy (Buffer#slice would share the memory)
      this.queue.push({ req: { id: this.nextId++, op, type, data: own, outLength }, resolve, reject });
      this.dispatch();
    });
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
      const job = this.queue.shift()!;
      slot.busy = job;
      slot.worker.ref();
      slot.worker.postMessage(job.req, [job.req.data.buffer as ArrayBuffer]);
    }
  }

  private spawn(): Slot {
    const slot: Slot = { worker: startWorker(), busy: null };
    slot.worker.unref();
    slot.worker.on('message', (reply: WorkerReply) => {
      const job = slot.busy;
      slot.busy = null;
      slot.worker.unref();
      if (job && job.req.id === reply.id) {
        if (reply.error === undefined) job.resolve(reply.result);
        else job.reject(reply.formatError ? new ImageFormatError(reply.error) : new Error(reply.error));
      }
      this.dispatch();
    });
    const fail = (e: Error): void => {
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      slot.busy?.reject(new Error(`compression worker failed: ${e.message}`));
      slot.busy = null;
      this.dispatch();
    };
    slot.worker.on('error', fail);
    slot.worker.on('exit', (code) => fail(new Error(`exited with code ${code}`)));
    this.slots.push(slot);
    return slot;
  }
}
