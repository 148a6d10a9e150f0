/**
 * What a KVM vCPU thread and the main thread say to each other.
 *
 * A vCPU thread starts before its vCPU exists (starting a worker costs tens of
 * milliseconds, which overlap the machine's setup this way) and waits on the
 * GO word; the main thread then writes the vCPU's file descriptor, id and
 * kvm_run size into the control words and sets GO, or sets STOP and GO to send
 * an unused thread away.
 *
 * The worker runs KVM_RUN and turns the exits the kernel does not handle into
 * messages: port I/O and MMIO. Writes are posted (the worker goes on at once;
 * the main thread applies them in order); a read waits for the main thread
 * to put the bytes in the shared reply area and bump REPLY_SEQ, so a read
 * sees every write posted before it. The control words also carry the stop
 * flag the main thread sets before kicking the thread out of KVM_RUN, and
 * the worker's thread id for that kick, and the count of posted writes not
 * yet applied: at MAX_POSTED_WRITES the worker waits, so a guest that floods
 * a port cannot grow the main thread's queue without bound.
 */

export const CONTROL = {
  STOP: 0,
  THREAD_ID: 1,
  REPLY_SEQ: 2,
  POSTED: 3,
  GO: 4,
  VCPU_FD: 5,
  VCPU_ID: 6,
  RUN_MMAP_SIZE: 7,
  WORDS: 8,
} as const;

export const MAX_POSTED_WRITES = 1024;

/** Bytes of reply data after the control words (one page covers any string I/O exit). */
export const REPLY_BYTES = 4096;

export function controlBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(CONTROL.WORDS * 4 + REPLY_BYTES);
}

export interface VcpuWorkerData {
  control: SharedArrayBuffer;
  /** The trace events enabled on the main thread (trace.ts). */
  trace: string[];
}

/** A port I/O exit: `count` items of `size` bytes (string I/O repeats), data for writes. */
export interface IoRequest {
  type: 'io';
  write: boolean;
  port: number;
  size: 1 | 2 | 4;
  count: number;
  data?: Uint8Array;
}

export interface MmioRequest {
  type: 'mmio';
  write: boolean;
  address: number;
  size: number;
  data?: Uint8Array;
}

/** How the vCPU stopped: asked to (stop), the guest asked for a shutdown or reset, or a failure. */
export type VcpuEnd =
  | { kind: 'stopped' }
  | { kind: 'shutdown' }
  | { kind: 'reset'; why: string }
  | { kind: 'error'; message: string };

export type VcpuMessage = IoRequest | MmioRequest | { type: 'end'; end: VcpuEnd };
