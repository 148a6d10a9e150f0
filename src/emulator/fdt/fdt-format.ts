/**
 * The flattened device tree (DTB) binary format, version 17, as the
 * Devicetree Specification defines it: the numbers both the writer and the
 * reader need, and the error the reader raises for a malformed blob.
 *
 * A blob is a 40-byte header, then the memory reservation block (pairs of
 * big-endian u64 address/size, 8-byte aligned, ended by a 0/0 pair), the
 * structure block (big-endian u32 tokens; node names and property values
 * padded to 4 bytes) and the strings block (NUL-terminated property names that
 * property tokens point into). Every number in a blob is big-endian.
 */

export const FDT_MAGIC = 0xd00dfeed;
export const FDT_VERSION = 17;
/** The oldest version a version-17 blob stays compatible with. */
export const FDT_LAST_COMP_VERSION = 16;
export const FDT_HEADER_SIZE = 40;

/** Byte offsets of the header fields (each a big-endian u32). */
export const FDT_HEADER = {
  MAGIC: 0,
  TOTALSIZE: 4,
  OFF_DT_STRUCT: 8,
  OFF_DT_STRINGS: 12,
  OFF_MEM_RSVMAP: 16,
  VERSION: 20,
  LAST_COMP_VERSION: 24,
  BOOT_CPUID_PHYS: 28,
  SIZE_DT_STRINGS: 32,
  SIZE_DT_STRUCT: 36,
} as const;

/** Structure block tokens. */
export const FDT_BEGIN_NODE = 1;
export const FDT_END_NODE = 2;
export const FDT_PROP = 3;
export const FDT_NOP = 4;
export const FDT_END = 9;

/** One entry of the memory reservation block. */
export interface FdtReservation {
  address: number;
  size: number;
}

export class FdtError extends Error {
  constructor(message: string) {
    super(`invalid device tree blob: ${message}`);
    this.name = 'FdtError';
  }
}

export function align4(n: number): number {
  return (n + 3) & ~3;
}
