/**
 * boot_params, the "zero page" a 64-bit Linux kernel finds through RSI
 * (arch/x86/include/uapi/asm/bootparam.h's layout, as the boot protocol
 * documents it): the kernel's own setup header copied in at 0x1f1 with the
 * loader's fields filled (type_of_loader, command line and initrd addresses,
 * their high halves in ext_*), the e820 memory map at 0x2d0, and the ACPI
 * RSDP address at 0x70.
 */

export const E820_RAM = 1;
export const E820_RESERVED = 2;
export const E820_ACPI = 3;
const E820_MAX = 128;

export interface E820Entry {
  addr: number;
  size: number;
  type: number;
}

export interface BootParamsInput {
  /** The kernel's setup header bytes (from 0x1f1). */
  header: Uint8Array;
  cmdlineAddr: number;
  initrd?: { addr: number; size: number };
  e820: readonly E820Entry[];
  rsdpAddr: number;
}

const OFF = {
  ACPI_RSDP_ADDR: 0x070,
  EXT_RAMDISK_IMAGE: 0x0c0,
  EXT_RAMDISK_SIZE: 0x0c4,
  EXT_CMD_LINE_PTR: 0x0c8,
  E820_ENTRIES: 0x1e8,
  SETUP_HEADER: 0x1f1,
  TYPE_OF_LOADER: 0x210,
  RAMDISK_IMAGE: 0x218,
  RAMDISK_SIZE: 0x21c,
  CMD_LINE_PTR: 0x228,
  E820_TABLE: 0x2d0,
} as const;

/** type_of_loader 0xff: a loader without an assigned id. */
const LOADER_UNDEFINED = 0xff;

function put64(v: DataView, at: number, value: number): void {
  v.setUint32(at, value % 0x1_0000_0000, true);
  v.setUint32(at + 4, Math.floor(value / 0x1_0000_0000), true);
}

function putSplit(v: DataView, low: number, high: number, value: number): void {
  v.setUint32(low, value % 0x1_0000_0000, true);
  v.setUint32(high, Math.floor(value / 0x1_0000_0000), true);
}

export function buildBootParams(input: BootParamsInput): Uint8Array {
  if (input.e820.length > E820_MAX) throw new Error(`boot_params: ${input.e820.length} e820 entries, at most ${E820_MAX}`);
  const page = new Uint8Array(4096);
  const v = new DataView(page.buffer);
  page.set(input.header.subarray(0, 0x290 - OFF.SETUP_HEADER), OFF.SETUP_HEADER);
  v.setUint8(OFF.TYPE_OF_LOADER, LOADER_UNDEFINED);
  putSplit(v, OFF.CMD_LINE_PTR, OFF.EXT_CMD_LINE_PTR, input.cmdlineAddr);
  putSplit(v, OFF.RAMDISK_IMAGE, OFF.EXT_RAMDISK_IMAGE, input.initrd?.addr ?? 0);
  putSplit(v, OFF.RAMDISK_SIZE, OFF.EXT_RAMDISK_SIZE, input.initrd?.size ?? 0);
  put64(v, OFF.ACPI_RSDP_ADDR, input.rsdpAddr);
  v.setUint8(OFF.E820_ENTRIES, input.e820.length);
  input.e820.forEach((e, i) => {
    const at = OFF.E820_TABLE + i * 20;
    put64(v, at, e.addr);
    put64(v, at + 8, e.size);
    v.setUint32(at + 16, e.type, true);
  });
  return page;
}
