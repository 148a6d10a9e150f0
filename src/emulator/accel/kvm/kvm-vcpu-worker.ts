/**
 * The body of one KVM vCPU thread: it waits for its vCPU (the GO word of
 * vcpu-protocol.ts), then runs KVM_RUN in a loop. Exits the kernel
 * handles itself never reach here (with the in-kernel irqchip, HLT waits in
 * the kernel); port I/O and MMIO go to the main thread (vcpu-protocol.ts);
 * SYSTEM_EVENT and SHUTDOWN (a triple fault, which resets a PC) end the
 * thread with the guest's request; INTERNAL_ERROR and FAIL_ENTRY end it with
 * a clear error and the registers. An interrupted KVM_RUN (EINTR, the kick)
 * checks the stop flag and runs on; so does EAGAIN, which KVM returns when an
 * application processor leaves wait-for-SIPI. The first entry into KVM_RUN
 * and the first exit are trace events (trace.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { KVM, KVM_EXIT, KVM_EXIT_IO_OUT, KVM_SYSTEM_EVENT, RUN, exitReasonName } from './abi.js';
import { KvmVcpu } from './kvm.js';
import { EAGAIN, EINTR, KvmSysError, currentThreadId, ioctlValueRaw, mapShared } from './sys.js';
import { enableTraceEvents, trace } from './trace.js';
import { CONTROL, MAX_POSTED_WRITES, type IoRequest, type MmioRequest, type VcpuEnd, type VcpuMessage, type VcpuWorkerData } from './vcpu-protocol.js';

const { control: controlBuffer, trace: traceEvents } = workerData as VcpuWorkerData;
const control = new Int32Array(controlBuffer, 0, CONTROL.WORDS);
const reply = new Uint8Array(controlBuffer, CONTROL.WORDS * 4);
const port = parentPort!;
const post = (message: VcpuMessage): void => port.postMessage(message);

enableTraceEvents(traceEvents);
// Loaded before the wait, so the vCPU's first KVM_RUN does not wait for the C library.
currentThreadId();
while (Atomics.load(control, CONTROL.GO) === 0) Atomics.wait(control, CONTROL.GO, 0);
const data = {
  fd: Atomics.load(control, CONTROL.VCPU_FD),
  id: Atomics.load(control, CONTROL.VCPU_ID),
  mmapSize: Atomics.load(control, CONTROL.RUN_MMAP_SIZE),
};

let runBytes = new Uint8Array(0);
let runView = new DataView(runBytes.buffer);

/** Posts a write; waits while too many are still unapplied. */
function postWrite(message: IoRequest | MmioRequest): void {
  post(message);
  let pending = Atomics.add(control, CONTROL.POSTED, 1) + 1;
  while (pending >= MAX_POSTED_WRITES) {
    Atomics.wait(control, CONTROL.POSTED, pending);
    pending = Atomics.load(control, CONTROL.POSTED);
  }
}

/** Waits for the main thread's answer to the read just posted and copies `length` bytes of it to kvm_run at `at`. */
function awaitReply(sequence: number, at: number, length: number): void {
  while (Atomics.load(control, CONTROL.REPLY_SEQ) === sequence) Atomics.wait(control, CONTROL.REPLY_SEQ, sequence);
  runBytes.set(reply.subarray(0, length), at);
}

function portIo(): void {
  const write = runView.getUint8(RUN.IO_DIRECTION) === KVM_EXIT_IO_OUT;
  const size = runView.getUint8(RUN.IO_SIZE) as 1 | 2 | 4;
  const count = runView.getUint32(RUN.IO_COUNT, true);
  const at = Number(runView.getBigUint64(RUN.IO_DATA_OFFSET, true));
  const length = size * count;
  const ioPort = runView.getUint16(RUN.IO_PORT, true);
  if (write) {
    postWrite({ type: 'io', write, port: ioPort, size, count, data: runBytes.slice(at, at + length) });
    return;
  }
  const sequence = Atomics.load(control, CONTROL.REPLY_SEQ);
  post({ type: 'io', write, port: ioPort, size, count });
  awaitReply(sequence, at, length);
}

function mmio(): void {
  const address = Number(runView.getBigUint64(RUN.MMIO_PHYS_ADDR, true));
  const size = runView.getUint32(RUN.MMIO_LEN, true);
  const write = runView.getUint8(RUN.MMIO_IS_WRITE) !== 0;
  if (write) {
    postWrite({ type: 'mmio', write, address, size, data: runBytes.slice(RUN.MMIO_DATA, RUN.MMIO_DATA + size) });
    return;
  }
  const sequence = Atomics.load(control, CONTROL.REPLY_SEQ);
  post({ type: 'mmio', write, address, size });
  awaitReply(sequence, RUN.MMIO_DATA, size);
}

function registers(): string {
  try {
    const r = new KvmVcpu(data.fd, data.id).getRegs();
    return `rip=0x${r.rip.toString(16)} rsp=0x${r.rsp.toString(16)} rflags=0x${r.rflags.toString(16)}`;
  } catch {
    return 'registers unreadable';
  }
}

function words(count: number): string {
  const n = Math.min(runView.getUint32(RUN.INTERNAL_NDATA, true), count);
  return Array.from({ length: n }, (_, i) => `0x${runView.getBigUint64(RUN.INTERNAL_DATA + i * 8, true).toString(16)}`).join(' ');
}

/** Runs the vCPU until something ends it. */
function loop(): VcpuEnd {
  trace('kvm_vcpu_first_run', `cpu ${data.id}`);
  let exits = 0;
  for (;;) {
    if (Atomics.load(control, CONTROL.STOP) !== 0) return { kind: 'stopped' };
    const r = ioctlValueRaw(data.fd, KVM.RUN);
    if (r < 0) {
      // EINTR: kicked; EAGAIN: an AP woke from wait-for-SIPI and must be entered again.
      if (-r === EINTR || -r === EAGAIN) {
        runView.setUint8(RUN.IMMEDIATE_EXIT, 0);
        continue;
      }
      return { kind: 'error', message: `vCPU ${data.id}: KVM_RUN failed with errno ${-r} (${registers()})` };
    }
    const reason = runView.getUint32(RUN.EXIT_REASON, true);
    if (exits++ === 0) trace('kvm_vcpu_first_exit', `cpu ${data.id} reason ${exitReasonName(reason)}`);
    switch (reason) {
      case KVM_EXIT.IO:
        portIo();
        break;
      case KVM_EXIT.MMIO:
        mmio();
        break;
      case KVM_EXIT.INTR:
        break;
      case KVM_EXIT.SYSTEM_EVENT: {
        const type = runView.getUint32(RUN.EVENT_TYPE, true);
        if (type === KVM_SYSTEM_EVENT.SHUTDOWN) return { kind: 'shutdown' };
        if (type === KVM_SYSTEM_EVENT.RESET) return { kind: 'reset', why: 'the guest asked for a reset' };
        return { kind: 'error', message: `vCPU ${data.id}: guest crash event (system event ${type}, ${registers()})` };
      }
      case KVM_EXIT.SHUTDOWN:
        return { kind: 'reset', why: `vCPU ${data.id} triple-faulted (${registers()})` };
      case KVM_EXIT.INTERNAL_ERROR:
        return {
          kind: 'error',
          message: `vCPU ${data.id}: KVM internal error, suberror ${runView.getUint32(RUN.EVENT_TYPE, true)} [${words(8)}] (${registers()})`,
        };
      case KVM_EXIT.FAIL_ENTRY:
        return {
          kind: 'error',
          message: `vCPU ${data.id}: KVM could not enter the guest (hardware reason 0x${runView.getBigUint64(RUN.EVENT_TYPE, true).toString(16)}, ${registers()})`,
        };
      default:
        return { kind: 'error', message: `vCPU ${data.id}: unexpected KVM exit ${exitReasonName(reason)} (${registers()})` };
    }
  }
}

/** Maps the vCPU's kvm_run and runs it, unless the thread was sent away unused. */
function main(): VcpuEnd {
  if (Atomics.load(control, CONTROL.STOP) !== 0) return { kind: 'stopped' };
  const run = mapShared(data.fd, data.mmapSize);
  runBytes = new Uint8Array(run.buffer);
  runView = new DataView(run.buffer);
  try {
    Atomics.store(control, CONTROL.THREAD_ID, currentThreadId());
    return loop();
  } finally {
    run.unmap();
  }
}

let end: VcpuEnd;
try {
  end = main();
} catch (err) {
  end = { kind: 'error', message: err instanceof KvmSysError ? `vCPU ${data.id}: ${err.message}` : String((err as Error).stack ?? err) };
}
post({ type: 'end', end });
