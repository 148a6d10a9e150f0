/**
 * The memory map and interrupt numbers of the RISC-V `virt` machine, the same
 * as QEMU 7.2's riscv virt board so kernels and device tree conventions made
 * for it work unchanged. Facts only: base addresses, sizes, PLIC sources.
 *
 * The PLIC's register window depends on the number of contexts (two per hart:
 * M then S), so its size is a function of the hart count; QEMU sizes it for
 * its 512-hart maximum, tsemu for the harts it has.
 */
import { PLIC_CONTEXT_BASE, PLIC_CONTEXT_STRIDE } from '../devices/plic.js';

export interface MmioRegion {
  readonly base: number;
  readonly size: number;
}

export const VIRT_TEST: MmioRegion = { base: 0x0010_0000, size: 0x1000 };
export const VIRT_RTC: MmioRegion = { base: 0x0010_1000, size: 0x1000 };
export const VIRT_CLINT: MmioRegion = { base: 0x0200_0000, size: 0x1_0000 };
export const VIRT_UART0: MmioRegion = { base: 0x1000_0000, size: 0x100 };
/** The first virtio-mmio slot; slot n is at base + n * size. */
export const VIRT_VIRTIO: MmioRegion = { base: 0x1000_1000, size: 0x1000 };
export const VIRT_VIRTIO_COUNT = 8;
export const VIRT_DRAM_BASE = 0x8000_0000;

export const VIRT_PLIC_BASE = 0x0c00_0000;

export function virtPlicRegion(harts: number): MmioRegion {
  return { base: VIRT_PLIC_BASE, size: PLIC_CONTEXT_BASE + 2 * harts * PLIC_CONTEXT_STRIDE };
}

export function virtioSlotRegion(slot: number): MmioRegion {
  return { base: VIRT_VIRTIO.base + slot * VIRT_VIRTIO.size, size: VIRT_VIRTIO.size };
}

/** PLIC interrupt sources (riscv,ndev is VIRT_PLIC_NDEV; source 0 means "none"). */
export const VIRT_IRQ = {
  /** virtio-mmio slot n raises source VIRTIO_FIRST + n. */
  VIRTIO_FIRST: 1,
  UART0: 10,
  RTC: 11,
} as const;
export const VIRT_PLIC_NDEV = 96;
/** Priority bits the virt PLIC implements: priorities 0..7. */
export const VIRT_PLIC_MAX_PRIORITY = 7;

/** The UART's input clock, as the device tree's clock-frequency states it. */
export const VIRT_UART_CLOCK_HZ = 3_686_400;
