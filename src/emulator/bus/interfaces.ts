/**
 * The two small interfaces devices see the guest through (DESIGN.md): guest
 * memory and interrupt lines, plus the MMIO register interface a device
 * exposes to a bus. Devices depend on these, never on a machine or a CPU.
 *
 * Accesses are 1, 2 or 4 bytes wide: a bus splits an 8-byte guest access into
 * two 4-byte accesses (low word first), so no device needs BigInt. Addresses
 * are plain numbers (guest-physical addresses stay below 2^53).
 */

export type AccessSize = 1 | 2 | 4;

export interface MmioDevice {
  /** Reads `size` bytes at `offset` from the device's base; returns them zero-extended (as an unsigned 32-bit number). */
  read(offset: number, size: AccessSize): number;
  /** Writes the low `size` bytes of `value` at `offset`. */
  write(offset: number, size: AccessSize, value: number): void;
}

export interface GuestMemory {
  /** Copies guest-physical [gpa, gpa + dst.length) into dst; throws a GuestMemoryError outside RAM. */
  read(gpa: number, dst: Uint8Array): void;
  /** Copies src to guest-physical gpa; throws a GuestMemoryError outside RAM. */
  write(gpa: number, src: Uint8Array): void;
}

export class GuestMemoryError extends Error {
  constructor(readonly gpa: number, readonly length: number) {
    super(`guest-physical range 0x${gpa.toString(16)}+${length} is outside guest RAM`);
    this.name = 'GuestMemoryError';
  }
}

/** One interrupt wire from a device to an interrupt controller. */
export interface IrqLine {
  set(level: boolean): void;
}
