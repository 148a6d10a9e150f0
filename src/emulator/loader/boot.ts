/**
 * Direct kernel boot for RISC-V: puts the firmware (optional), the kernel,
 * the initrd (optional), OpenSBI's fw_dynamic info block (with firmware) and
 * the device tree into guest RAM where placement.ts says, and returns the
 * addresses the harts start with.
 *
 * The device tree comes from a callback that gets the initrd's final range:
 * the blob's size must not depend on the range (its /chosen holds fixed-size
 * cells), so one trial build sizes it, then it is placed at the top of RAM
 * and rebuilt with the real range.
 *
 * fw_dynamic info (OpenSBI's fw_dynamic ABI, version 2): six little-endian
 * u64 fields — magic "OSBI" (0x4942534f), version, next_addr (the kernel
 * entry), next_mode (1 = S-mode), options (0), boot_hart (0) — whose address
 * the firmware gets in a2.
 */
import type { GuestMemory } from '../bus/interfaces.js';
import { loadBlob, loadKernel, type LoadedKernel } from './kernel.js';
import { fdtAddress, firmwareInfoAddress, initrdAddress, kernelBase, type RamRange } from './placement.js';

export interface BootImages {
  kernel: Uint8Array;
  initrd?: Uint8Array;
  /** M-mode firmware (OpenSBI fw_dynamic.bin), loaded at the start of RAM. */
  firmware?: Uint8Array;
}

export interface InitrdRange {
  start: number;
  end: number;
}

export interface BootLayout {
  kernel: LoadedKernel;
  fdt: number;
  initrd?: InitrdRange;
  /** With firmware: its entry (the start of RAM) and the fw_dynamic info block's address. */
  firmware?: { entry: number; info: number };
}

const FW_DYNAMIC_MAGIC = 0x4942534f;
const FW_DYNAMIC_VERSION = 2;
const FW_NEXT_MODE_S = 1;

function fwDynamicInfo(nextAddr: number): Uint8Array {
  const info = new Uint8Array(48);
  const view = new DataView(info.buffer);
  const put = (index: number, value: number): void => {
    view.setUint32(index * 8, value % 0x1_0000_0000, true);
    view.setUint32(index * 8 + 4, Math.floor(value / 0x1_0000_0000), true);
  };
  put(0, FW_DYNAMIC_MAGIC);
  put(1, FW_DYNAMIC_VERSION);
  put(2, nextAddr);
  put(3, FW_NEXT_MODE_S);
  put(4, 0);
  put(5, 0);
  return info;
}

export function loadBootImages(
  mem: GuestMemory,
  ram: RamRange,
  images: BootImages,
  makeFdt: (initrd: InitrdRange | undefined) => Uint8Array,
): BootLayout {
  let firmwareEnd: number | undefined;
  if (images.firmware) {
    loadBlob(mem, ram, ram.base, images.firmware, 'firmware');
    firmwareEnd = ram.base + images.firmware.length;
  }
  const kernel = loadKernel(mem, ram, images.kernel, kernelBase(ram, firmwareEnd));
  if (firmwareEnd !== undefined && kernel.start < firmwareEnd) {
    throw new Error(`the kernel at 0x${kernel.start.toString(16)} overlaps the firmware (up to 0x${firmwareEnd.toString(16)})`);
  }
  const trial = makeFdt(images.initrd ? { start: 0, end: 0 } : undefined);
  const fdt = fdtAddress(ram, trial.length);
  if (fdt < kernel.end) throw new Error('the device tree does not fit in guest RAM above the kernel: give the machine more memory (-m)');
  const info = images.firmware ? firmwareInfoAddress(fdt) : undefined;
  let initrd: InitrdRange | undefined;
  if (images.initrd) {
    const start = initrdAddress(kernel.end, info ?? fdt, images.initrd.length);
    initrd = { start, end: start + images.initrd.length };
    loadBlob(mem, ram, start, images.initrd, 'initrd');
  }
  const blob = initrd ? makeFdt(initrd) : trial;
  if (blob.length !== trial.length) throw new Error('internal error: the device tree changed size with the initrd range');
  loadBlob(mem, ram, fdt, blob, 'device tree');
  if (info === undefined) return { kernel, fdt, initrd };
  loadBlob(mem, ram, info, fwDynamicInfo(kernel.entry), 'fw_dynamic info');
  return { kernel, fdt, initrd, firmware: { entry: ram.base, info } };
}
