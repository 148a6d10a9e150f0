/**
 * A virtio device's interrupt status bits (used buffer, configuration change)
 * and how its interrupt line follows them.
 *
 * Theory of operation. The line is high while some bit is set. The status is
 * a cell: a plain number here (LocalInterruptStatus), or a word in shared
 * memory that another thread also clears bits of, the driver's
 * acknowledgement served on a vCPU thread (vcpu/mmio-shadow.ts SharedStatus).
 * With two threads, each drives the line after its own change with
 * followStatus(): it sets the line from the status, then reads the status
 * again and repeats until the two agree. Whoever drives the line last has
 * read the last status after driving it, so once both are done the line
 * matches the status (a thread that changes the status afterwards drives the
 * line again itself).
 */
import type { IrqLine } from '../bus/interfaces.js';

export interface InterruptStatus {
  readonly value: number;
  /** Sets `bits` (the device's side). */
  set(bits: number): void;
  /** Clears `bits` (the driver's acknowledgement, or a reset). */
  clear(bits: number): void;
}

/** The status of a device whose every access runs on one thread. */
export class LocalInterruptStatus implements InterruptStatus {
  value = 0;

  set(bits: number): void {
    this.value |= bits;
  }

  clear(bits: number): void {
    this.value &= ~bits;
  }
}

/** Drives `line` from `status` until a read of the status after driving agrees with the level driven (see the header). */
export function followStatus(status: InterruptStatus, line: IrqLine): void {
  for (;;) {
    const level = status.value !== 0;
    line.set(level);
    if ((status.value !== 0) === level) return;
  }
}
