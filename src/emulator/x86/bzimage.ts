/**
 * The bzImage format of Linux's x86 boot protocol (Documentation/arch/x86/
 * boot.rst): a real-mode part of (setup_sects + 1) sectors whose setup header
 * starts at 0x1f1 ("HdrS" at 0x202), then the protected-mode kernel. tsemu
 * boots it the 64-bit way only: the protected-mode part goes at 1 MiB and the
 * vCPU enters at its start + 0x200, which needs protocol 2.12 or later and
 * XLF_KERNEL_64. Anything else is a clear error, never a guess.
 */

export const SETUP_HEADER_OFFSET = 0x1f1;
const HDRS = 0x5372_6448; // "HdrS"
const XLF_KERNEL_64 = 1 << 0;
const XLF_CAN_BE_LOADED_ABOVE_4G = 1 << 1;
export const ENTRY_64_OFFSET = 0x200;

export interface SetupHeader {
  version: number;
  setupSects: number;
  loadflags: number;
  xloadflags: number;
  initrdAddrMax: number;
  cmdlineSize: number;
  initSize: number;
  /** The bytes from 0x1f1 to the header's end, copied into boot_params as they are. */
  bytes: Uint8Array;
}

export interface BzImage {
  header: SetupHeader;
  /** The protected-mode kernel, loaded at 1 MiB. */
  kernel: Uint8Array;
  /** Whether the initrd may sit above 4 GiB. */
  initrdAbove4G: boolean;
}

export function parseBzImage(image: Uint8Array): BzImage {
  if (image.length < 0x400) throw new Error('kernel: too small to be a bzImage');
  const v = new DataView(image.buffer, image.byteOffset, image.byteLength);
  if (v.getUint32(0x202, true) !== HDRS) throw new Error('kernel: no "HdrS" setup header at 0x202: not a bzImage');
  const version = v.getUint16(0x206, true);
  if (version < 0x020c) throw new Error(`kernel: boot protocol ${(version >> 8)}.${version & 0xff} has no 64-bit entry point (2.12 or later needed)`);
  const xloadflags = v.getUint16(0x236, true);
  if (!(xloadflags & XLF_KERNEL_64)) throw new Error('kernel: the bzImage has no 64-bit entry point (XLF_KERNEL_64 is clear)');
  const setupSects = v.getUint8(0x1f1) || 4;
  const kernelStart = (setupSects + 1) * 512;
  if (kernelStart + ENTRY_64_OFFSET >= image.length) throw new Error('kernel: the bzImage ends inside its setup part');
  const headerEnd = 0x202 + v.getUint8(0x201);
  return {
    header: {
      version,
      setupSects,
      loadflags: v.getUint8(0x211),
      xloadflags,
      initrdAddrMax: v.getUint32(0x22c, true),
      cmdlineSize: v.getUint32(0x238, true),
      initSize: v.getUint32(0x260, true),
      bytes: image.slice(SETUP_HEADER_OFFSET, Math.min(headerEnd, image.length)),
    },
    kernel: image.subarray(kernelStart),
    initrdAbove4G: (xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G) !== 0,
  };
}
