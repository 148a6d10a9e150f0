/**
 * Where the boot pieces go in guest RAM for direct kernel boot, following the
 * conventions of QEMU's riscv boards so kernels find things where they look:
 *
 *   - firmware (--bios FILE) at the start of RAM; the kernel at the first
 *     2 MiB boundary after it (RV64 kernels need 2 MiB alignment), or at
 *     RAM + 2 MiB when tsemu's own SBI stands in for firmware;
 *   - the device tree at the top of RAM, below 3 GiB (guest-physical) when
 *     RAM starts below it, aligned down to 2 MiB;
 *   - the OpenSBI fw_dynamic info block in the 4 KiB page just below the FDT;
 *   - the initrd right below that page, 4 KiB-aligned, above the kernel's end.
 *
 * Every function checks that its result fits and throws a clear error otherwise.
 */

export const MiB = 0x10_0000;
const FDT_LIMIT = 3072 * MiB;
const FDT_ALIGN = 2 * MiB;
const KERNEL_ALIGN = 2 * MiB;
const PAGE = 0x1000;

export interface RamRange {
  base: number;
  size: number;
}

export function alignUp(value: number, align: number): number {
  return Math.ceil(value / align) * align;
}

export function alignDown(value: number, align: number): number {
  return Math.floor(value / align) * align;
}

/** The kernel's load address: RAM + 2 MiB, or the 2 MiB boundary after the firmware's end. */
export function kernelBase(ram: RamRange, firmwareEnd?: number): number {
  return firmwareEnd === undefined ? ram.base + KERNEL_ALIGN : alignUp(firmwareEnd, KERNEL_ALIGN);
}

/** The device tree's address for a blob of `fdtSize` bytes. */
export function fdtAddress(ram: RamRange, fdtSize: number): number {
  const ramEnd = ram.base + ram.size;
  const top = ram.base < FDT_LIMIT ? Math.min(ramEnd, FDT_LIMIT) : ramEnd;
  const addr = alignDown(top - fdtSize, FDT_ALIGN);
  if (addr < ram.base) throw new Error(`the device tree (${fdtSize} bytes) does not fit in guest RAM`);
  return addr;
}

/** The fw_dynamic info block's address (one page below the FDT). */
export function firmwareInfoAddress(fdtAddr: number): number {
  return fdtAddr - PAGE;
}

/** The initrd's address: as high as possible below `limit`, never below `kernelEnd`. */
export function initrdAddress(kernelEnd: number, limit: number, initrdSize: number): number {
  const addr = alignDown(limit - initrdSize, PAGE);
  if (addr < kernelEnd) {
    throw new Error(
      `the initrd (${initrdSize} bytes) does not fit in guest RAM between the kernel's end ` +
        `0x${kernelEnd.toString(16)} and 0x${limit.toString(16)}: give the machine more memory (-m)`,
    );
  }
  return addr;
}
