/**
 * Loads a kernel (or any payload) into guest RAM. Recognised formats, in order:
 *
 *   - gzip (1f 8b): decompressed first (at most the size of RAM), then as below;
 *   - ELF64 RISC-V: PT_LOAD segments at their physical addresses, .bss zeroed,
 *     entry from e_entry;
 *   - flat RISC-V Linux Image (boot image header): at the kernel base, occupying
 *     image_size bytes (its .bss included) so nothing is placed over it;
 *   - anything else: a flat binary at the kernel base, entered at its first byte.
 *
 * Everything written must lie inside guest RAM; a kernel that does not fit is
 * an error naming the range, never a partial load.
 */
import { gunzipSync } from 'node:zlib';
import type { GuestMemory } from '../bus/interfaces.js';
import { isElf, parseElf64 } from './elf64.js';
import type { RamRange } from './placement.js';
import { parseRiscvImageHeader } from './riscv-image.js';

export type KernelFormat = 'elf' | 'image' | 'raw';

export interface LoadedKernel {
  format: KernelFormat;
  /** Guest-physical entry point. */
  entry: number;
  /** Lowest guest-physical address written. */
  start: number;
  /** First address past the kernel's memory (its .bss included). */
  end: number;
}

const ZERO_CHUNK = new Uint8Array(64 * 1024);

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

function checkInRam(ram: RamRange, gpa: number, length: number, what: string): void {
  if (gpa < ram.base || gpa + length > ram.base + ram.size) {
    throw new Error(
      `${what} at 0x${gpa.toString(16)}+0x${length.toString(16)} does not fit in guest RAM ` +
        `0x${ram.base.toString(16)}+0x${ram.size.toString(16)}`,
    );
  }
}

function zeroFill(mem: GuestMemory, gpa: number, length: number): void {
  for (let done = 0; done < length; done += ZERO_CHUNK.length) {
    mem.write(gpa + done, ZERO_CHUNK.subarray(0, Math.min(ZERO_CHUNK.length, length - done)));
  }
}

/** Copies a flat blob to `gpa` after checking it fits in RAM. */
export function loadBlob(mem: GuestMemory, ram: RamRange, gpa: number, bytes: Uint8Array, what: string): void {
  checkInRam(ram, gpa, bytes.length, what);
  mem.write(gpa, bytes);
}

function decompress(bytes: Uint8Array, ram: RamRange): Uint8Array {
  try {
    return gunzipSync(bytes, { maxOutputLength: ram.size });
  } catch (err) {
    throw new Error(`kernel: cannot decompress the gzip image: ${(err as Error).message}`);
  }
}

/** Loads a kernel file's bytes; `base` is where flat images go. */
export function loadKernel(mem: GuestMemory, ram: RamRange, file: Uint8Array, base: number): LoadedKernel {
  const bytes = isGzip(file) ? decompress(file, ram) : file;
  if (isElf(bytes)) {
    const elf = parseElf64(bytes);
    for (const seg of elf.segments) checkInRam(ram, seg.paddr, seg.memSize, 'kernel ELF segment');
    for (const seg of elf.segments) {
      mem.write(seg.paddr, seg.data);
      zeroFill(mem, seg.paddr + seg.data.length, seg.memSize - seg.data.length);
    }
    const start = Math.min(...elf.segments.map((s) => s.paddr));
    const end = Math.max(...elf.segments.map((s) => s.paddr + s.memSize));
    return { format: 'elf', entry: elf.entry, start, end };
  }
  const header = parseRiscvImageHeader(bytes);
  const size = Math.max(bytes.length, header?.imageSize ?? 0);
  checkInRam(ram, base, size, 'kernel');
  mem.write(base, bytes);
  return { format: header ? 'image' : 'raw', entry: base, start: base, end: base + size };
}
