/**
 * GuestRam: the documented extension of bus/interfaces.ts's GuestMemory for
 * devices that move bulk data (virtio). Besides copying in and out, it lends a
 * live view of a guest-physical range: a Uint8Array over guest RAM itself
 * (on the virt machine, the shared WebAssembly.Memory), so rings are read in
 * place and block I/O lands in guest buffers without a copy. A view is valid
 * while the machine runs; writes to it are guest memory writes. Views of
 * shared memory are raced by the vCPU threads exactly as a DMA engine races
 * a CPU: ring indices are read and written with Atomics (virtqueue.ts), the
 * data behind them is the driver's to leave alone while the device owns it.
 */
import type { GuestMemory } from '../bus/interfaces.js';

export interface GuestRam extends GuestMemory {
  /** A live view of guest-physical [gpa, gpa + length); throws GuestMemoryError unless it is all RAM. */
  view(gpa: number, length: number): Uint8Array;
}
