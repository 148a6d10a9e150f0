/**
 * Facts from the virtio 1.x specification that every part of tsemu's virtio
 * implementation shares: device status bits, transport feature bits, split
 * virtqueue descriptor and ring flags, device IDs and the queue size limit.
 * Numbers only; no behaviour.
 */

/** Device status bits (the driver writes them in order as it initialises the device). */
export const STATUS = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  DEVICE_NEEDS_RESET: 64,
  FAILED: 128,
} as const;

/** Transport feature bits the core offers on every device. */
export const F_INDIRECT_DESC = 28;
export const F_EVENT_IDX = 29;
export const F_VERSION_1 = 32;

/** A feature set with the given bits set. */
export function featureBits(...bits: readonly number[]): bigint {
  return bits.reduce((set, bit) => set | (1n << BigInt(bit)), 0n);
}

export function hasFeature(set: bigint, bit: number): boolean {
  return (set & (1n << BigInt(bit))) !== 0n;
}

/** Descriptor flags. */
export const DESC_F_NEXT = 1;
export const DESC_F_WRITE = 2;
export const DESC_F_INDIRECT = 4;
export const DESC_SIZE = 16;

/** Available ring flag: the driver asks for no interrupts (ignored under EVENT_IDX). */
export const AVAIL_F_NO_INTERRUPT = 1;

/** The largest split virtqueue. */
export const MAX_QUEUE_SIZE = 32768;

/** Interrupt status bits (virtio-mmio InterruptStatus, virtio-pci ISR). */
export const INT_USED_BUFFER = 1;
export const INT_CONFIG_CHANGE = 2;

export const DEVICE_ID = {
  NET: 1,
  BLOCK: 2,
  CONSOLE: 3,
  ENTROPY: 4,
} as const;
