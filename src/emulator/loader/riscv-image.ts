/**
 * The RISC-V Linux boot image header (the kernel's boot-image-header
 * documentation): 64 bytes at the start of a flat `Image`.
 *
 *   0  code0, code1   two instructions (jump over the header)
 *   8  text_offset    u64: where in RAM (from its base) the image wants to be
 *  16  image_size     u64: bytes the image occupies once running (with .bss)
 *  24  flags          u64: bit 0 = big-endian kernel
 *  32  version        u32: major << 16 | minor
 *  48  magic          "RISCV\0\0\0" (deprecated since 0.2)
 *  56  magic2         "RSC\x05"
 *
 * An image is recognised by either magic. Sizes are read as two 32-bit halves
 * and must stay below 2^53 (they are RAM offsets; anything bigger is rejected).
 */

export const RISCV_IMAGE_HEADER_SIZE = 64;
const MAGIC = 'RISCV\0\0\0';
const MAGIC2 = 'RSC\x05';
const FLAG_BIG_ENDIAN = 1;

export interface RiscvImageHeader {
  /** Load offset from the start of RAM (0 in old images: use the platform default). */
  textOffset: number;
  /** Bytes the kernel occupies in memory, .bss included (0 in old images: unknown). */
  imageSize: number;
  version: number;
}

function readU64(view: DataView, offset: number): number {
  const lo = view.getUint32(offset, true);
  const hi = view.getUint32(offset + 4, true);
  if (hi >= 0x20_0000) throw new Error(`RISC-V Image header: a size field at byte ${offset} is absurd`);
  return hi * 0x1_0000_0000 + lo;
}

function ascii(bytes: Uint8Array, offset: number, length: number): string {
  return String.fromCharCode(...bytes.subarray(offset, offset + length));
}

/** The header of a flat RISC-V Linux Image, or null when `bytes` does not start with one. */
export function parseRiscvImageHeader(bytes: Uint8Array): RiscvImageHeader | null {
  if (bytes.length < RISCV_IMAGE_HEADER_SIZE) return null;
  if (ascii(bytes, 48, 8) !== MAGIC && ascii(bytes, 56, 4) !== MAGIC2) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, RISCV_IMAGE_HEADER_SIZE);
  if (view.getUint32(24, true) & FLAG_BIG_ENDIAN) throw new Error('RISC-V Image: big-endian kernels are not supported');
  return { textOffset: readU64(view, 8), imageSize: readU64(view, 16), version: view.getUint32(32, true) };
}
