/**
 * The JIT's compile worker, seen from the vCPU thread: batches go out as
 * plain data and come back as compiled WebAssembly.Modules, so translation
 * and V8's compilation (most of a boot's JIT cost) run on another core while
 * the hart goes on in the interpreter.
 *
 * Theory of operation. start() runs compile-worker.ts on a worker thread and
 * hands it one end of a MessageChannel and a shared counter. post() sends a
 * request { id, packed blocks }; the worker builds the batch (batch-build.ts),
 * compiles it, posts { id, module, size, millis } (or { id, error }) and then adds
 * one to the counter. The vCPU thread never returns to its event loop, so
 * `pending` reads the counter (a plain memory read, cheap enough for every
 * dispatch) and, when it is non-zero, receive() takes the replies with
 * receiveMessageOnPort. Replies come in request order. The worker is unref'd:
 * it ends with the vCPU thread.
 */
import { MessageChannel, receiveMessageOnPort, type MessagePort, type Worker } from 'node:worker_threads';
import { siblingModule, startModuleWorker } from '../../vcpu/start-worker.js';
import { packBlocks, type BatchTarget, type BlockRequest } from './batch-build.js';

/** A batch on its way to the worker: the blocks packed (batch-build.ts packBlocks). */
export interface CompileRequest {
  readonly id: number;
  readonly packed: Int32Array;
}

export type CompileReply =
  | { readonly id: number; readonly module: WebAssembly.Module; readonly size: number; readonly millis: number }
  | { readonly id: number; readonly error: string };

/** What the worker gets first: its end of the channel, the counter and the hart's areas. */
export interface CompileWorkerInit {
  readonly port: MessagePort;
  readonly done: Int32Array;
  readonly target: BatchTarget;
}

export class BackgroundCompiler {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly done = new Int32Array(new SharedArrayBuffer(4));

  constructor(target: BatchTarget) {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = startModuleWorker(siblingModule('compile-worker', import.meta.url));
    this.worker.unref();
    const init: CompileWorkerInit = { port: port2, done: this.done, target };
    this.worker.postMessage(init, [port2]);
  }

  post(id: number, blocks: readonly BlockRequest[]): void {
    const request: CompileRequest = { id, packed: packBlocks(blocks) };
    this.port.postMessage(request, [request.packed.buffer as ArrayBuffer]);
  }

  /** Whether replies have arrived (a memory read: the dispatcher asks before every block). */
  get pending(): boolean {
    return this.done[0] !== 0;
  }

  /** The replies that have arrived. */
  receive(): CompileReply[] {
    const replies: CompileReply[] = [];
    for (let m = receiveMessageOnPort(this.port); m !== undefined; m = receiveMessageOnPort(this.port)) {
      Atomics.sub(this.done, 0, 1);
      replies.push(m.message as CompileReply);
    }
    return replies;
  }
}
