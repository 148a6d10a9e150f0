/**
 * Runs a KVM vCPU on its own worker thread (kvm-vcpu-worker.ts) and serves its
 * port I/O and MMIO on the main thread through the handlers it is given.
 *
 * prepareKvmVcpuThread() starts the worker before the vCPU exists, so the
 * worker's start-up overlaps the machine's setup; run() hands it the vCPU and
 * the handlers and lets it go, cancel() sends an unused one away.
 *
 * Reads are answered through the shared reply area (the worker waits for
 * them); writes arrive as posted messages, in order, and each one applied
 * is counted back (vcpu-protocol.ts bounds how many may wait). A device
 * that throws ends the vCPU with an error; the worker is still released. stop() kicks the thread
 * out of KVM_RUN: it sets the stop flag and kvm_run's immediate_exit (on a
 * mapping of its own), then sends SIGUSR2 to the thread, for which a no-op
 * handler is installed so the signal only interrupts the ioctl.
 */
import { siblingModule, startModuleWorker } from '../../vcpu/start-worker.js';
import { RUN } from './abi.js';
import type { KvmVcpu } from './kvm.js';
import { mapShared, signalThread } from './sys.js';
import { traceEnabled } from './trace.js';
import { CONTROL, MAX_POSTED_WRITES, REPLY_BYTES, controlBuffer, type IoRequest, type MmioRequest, type VcpuEnd, type VcpuMessage, type VcpuWorkerData } from './vcpu-protocol.js';

const SIGUSR2 = 12;

export interface IoHandlers {
  /** Reads `size` bytes at `port` (1, 2 or 4); returns them zero-extended. */
  portRead(port: number, size: 1 | 2 | 4): number;
  portWrite(port: number, size: 1 | 2 | 4, value: number): void;
  /** Reads `size` bytes (1 to 8) at guest-physical `address` into `data`. */
  mmioRead(address: number, data: Uint8Array): void;
  mmioWrite(address: number, data: Uint8Array): void;
}

export interface KvmVcpuThread {
  readonly ended: Promise<VcpuEnd>;
  stop(): void;
}

let kickHandlerInstalled = false;

function valueAt(data: Uint8Array, at: number, size: number): number {
  let value = 0;
  for (let i = size - 1; i >= 0; i--) value = value * 256 + data[at + i];
  return value;
}

function putValue(data: Uint8Array, at: number, size: number, value: number): void {
  for (let i = 0; i < size; i++, value = Math.floor(value / 256)) data[at + i] = value & 0xff;
}

export interface ParkedVcpuThread {
  /** Hands the thread its vCPU and lets it enter KVM_RUN. */
  run(vcpu: KvmVcpu, mmapSize: number, handlers: IoHandlers): KvmVcpuThread;
  /** Sends a thread that never ran away; resolves once it has ended. */
  cancel(): Promise<void>;
}

export function prepareKvmVcpuThread(): ParkedVcpuThread {
  if (!kickHandlerInstalled) {
    process.on('SIGUSR2', () => {});
    kickHandlerInstalled = true;
  }
  const buffer = controlBuffer();
  const control = new Int32Array(buffer, 0, CONTROL.WORDS);
  const reply = new Uint8Array(buffer, CONTROL.WORDS * 4, REPLY_BYTES);
  const workerData: VcpuWorkerData = { control: buffer, trace: traceEnabled() };
  const worker = startModuleWorker(siblingModule('kvm-vcpu-worker', import.meta.url), workerData);
  let id = -1;
  let handlers: IoHandlers | undefined;
  let unmapRun = (): void => {};
  let stop = (): void => {};

  /** Lets the worker go on: a read's reply is ready, or one posted write fewer is pending. */
  const settle = (m: IoRequest | MmioRequest): void => {
    if (!m.write) {
      Atomics.add(control, CONTROL.REPLY_SEQ, 1);
      Atomics.notify(control, CONTROL.REPLY_SEQ);
    } else if (Atomics.sub(control, CONTROL.POSTED, 1) >= MAX_POSTED_WRITES) {
      Atomics.notify(control, CONTROL.POSTED);
    }
  };
  const serve = (m: IoRequest | MmioRequest, h: IoHandlers): void => {
    if (m.type === 'io') {
      for (let i = 0; i < m.count; i++) {
        if (m.write) h.portWrite(m.port, m.size, valueAt(m.data!, i * m.size, m.size));
        else putValue(reply, i * m.size, m.size, h.portRead(m.port, m.size));
      }
    } else if (m.write) h.mmioWrite(m.address, m.data!);
    else h.mmioRead(m.address, reply.subarray(0, m.size));
  };

  let exited = false;
  const ended = new Promise<VcpuEnd>((resolve) => {
    let end: VcpuEnd | undefined;
    worker.on('message', (m: VcpuMessage) => {
      if (m.type === 'end') {
        if (end?.kind !== 'error') end = m.end; // a device failure stopped it: keep that reason
        return;
      }
      try {
        serve(m, handlers!);
      } catch (err) {
        end = { kind: 'error', message: `vCPU ${id}: device failed: ${(err as Error).message}` };
        stop();
      }
      settle(m);
    });
    worker.on('error', (err) => (end = { kind: 'error', message: err.stack ?? err.message }));
    worker.on('exit', (code) => {
      exited = true;
      unmapRun();
      resolve(end ?? { kind: 'error', message: `vCPU ${id} thread exited with code ${code}` });
    });
  });

  const go = (): void => {
    Atomics.store(control, CONTROL.GO, 1);
    Atomics.notify(control, CONTROL.GO);
  };

  return {
    run(vcpu, mmapSize, h) {
      id = vcpu.id;
      handlers = h;
      const run = mapShared(vcpu.fd, mmapSize);
      unmapRun = () => run.unmap();
      const runBytes = new Uint8Array(run.buffer);
      stop = () => {
        if (exited) return;
        Atomics.store(control, CONTROL.STOP, 1);
        runBytes[RUN.IMMEDIATE_EXIT] = 1;
        const tid = Atomics.load(control, CONTROL.THREAD_ID);
        if (tid !== 0) {
          try {
            signalThread(tid, SIGUSR2);
          } catch {
            // The thread has already ended.
          }
        }
      };
      Atomics.store(control, CONTROL.VCPU_FD, vcpu.fd);
      Atomics.store(control, CONTROL.VCPU_ID, vcpu.id);
      Atomics.store(control, CONTROL.RUN_MMAP_SIZE, mmapSize);
      go();
      return { ended, stop: () => stop() };
    },
    async cancel() {
      Atomics.store(control, CONTROL.STOP, 1);
      go();
      await ended;
    },
  };
}
