/**
 * ELF64 executables for RISC-V (little-endian): reads the file header and the
 * PT_LOAD program headers, which is all a loader needs. Segments are placed at
 * their physical address (p_paddr), and the entry point is translated from
 * the segment that contains it, so a kernel linked at a virtual address with
 * physical load addresses lands where it expects.
 *
 * Everything is bounds-checked against the file: a truncated or lying header
 * is a clear error, never an out-of-range read. Addresses must stay below
 * 2^53 (guest-physical addresses always do).
 */

export interface ElfSegment {
  /** Guest-physical load address. */
  paddr: number;
  vaddr: number;
  /** Bytes from the file (p_filesz of them). */
  data: Uint8Array;
  /** Bytes in memory (p_memsz >= p_filesz; the rest is zero-filled). */
  memSize: number;
}

export interface Elf64Image {
  /** Physical address of the entry point. */
  entry: number;
  segments: ElfSegment[];
}

const EM_RISCV = 243;
const ET_EXEC = 2;
const ET_DYN = 3;
const PT_LOAD = 1;
const EHDR_SIZE = 64;
const PHDR_SIZE = 56;

export function isElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46;
}

class ElfError extends Error {
  constructor(message: string) {
    super(`ELF: ${message}`);
    this.name = 'ElfError';
  }
}

/** Reads a u64 field that must fit a JS number exactly (below 2^53). */
function readU64(view: DataView, offset: number, what: string): number {
  const lo = view.getUint32(offset, true);
  const hi = view.getUint32(offset + 4, true);
  if (hi >= 0x20_0000) throw new ElfError(`${what} 0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')} is too large`);
  return hi * 0x1_0000_0000 + lo;
}

/** Like readU64 but accepts addresses in the upper canonical half, returned as negative offsets from 2^64 (only compared, never loaded). */
function readAddress(view: DataView, offset: number): number {
  const lo = view.getUint32(offset, true);
  const hi = view.getInt32(offset + 4, true);
  return hi * 0x1_0000_0000 + lo;
}

export function parseElf64(bytes: Uint8Array): Elf64Image {
  if (!isElf(bytes) || bytes.length < EHDR_SIZE) throw new ElfError('not an ELF file (or truncated header)');
  if (bytes[4] !== 2) throw new ElfError('not a 64-bit ELF file');
  if (bytes[5] !== 1) throw new ElfError('not a little-endian ELF file');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = view.getUint16(16, true);
  if (type !== ET_EXEC && type !== ET_DYN) throw new ElfError(`not an executable (e_type ${type})`);
  const machine = view.getUint16(18, true);
  if (machine !== EM_RISCV) throw new ElfError(`not a RISC-V file (e_machine ${machine})`);
  const entryVaddr = readAddress(view, 24);
  const phoff = readU64(view, 32, 'e_phoff');
  const phentsize = view.getUint16(54, true);
  const phnum = view.getUint16(56, true);
  if (phentsize < PHDR_SIZE) throw new ElfError(`program header entries of ${phentsize} bytes are too small`);
  if (phoff + phnum * phentsize > bytes.length) throw new ElfError('program headers run past the end of the file');

  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (view.getUint32(ph, true) !== PT_LOAD) continue;
    const offset = readU64(view, ph + 8, 'p_offset');
    const vaddr = readAddress(view, ph + 16);
    const paddr = readU64(view, ph + 24, 'p_paddr');
    const fileSize = readU64(view, ph + 32, 'p_filesz');
    const memSize = readU64(view, ph + 40, 'p_memsz');
    if (offset + fileSize > bytes.length) throw new ElfError(`segment ${i} runs past the end of the file`);
    if (memSize < fileSize) throw new ElfError(`segment ${i} has p_memsz < p_filesz`);
    if (memSize === 0) continue;
    segments.push({ paddr, vaddr, data: bytes.subarray(offset, offset + fileSize), memSize });
  }
  if (segments.length === 0) throw new ElfError('no loadable segments');
  const home = segments.find((s) => entryVaddr >= s.vaddr && entryVaddr < s.vaddr + s.memSize);
  if (!home) throw new ElfError(`entry point is outside every loadable segment`);
  return { entry: home.paddr + (entryVaddr - home.vaddr), segments };
}
