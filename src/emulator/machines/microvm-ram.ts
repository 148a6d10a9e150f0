/**
 * Guest RAM of the microvm machine: where it sits in guest-physical space, the
 * host memory behind it, and the KVM memory slots that map one onto the other.
 *
 * Theory of operation. RAM fills guest-physical space from 0 up to the 32-bit
 * hole (MICROVM_MEMORY.LOW_RAM_MAX, 3 GiB); what does not fit there continues at
 * 4 GiB (HIGH_RAM), as on a PC, so the hole keeps room for the IOAPIC, the local
 * APICs and PCI windows. microvmRamLayout() gives those one or two ranges.
 * mapMicrovmRam() backs each range with anonymous host memory in chunks of at
 * most 4 GiB (MAX_CHUNK): one mmap, one zero-copy koffi view and one KVM slot per
 * chunk, because a koffi view larger than 4 GiB aborts the process. Untouched
 * pages cost the host nothing (MAP_NORESERVE). The GuestRam it returns reads
 * and writes across chunk boundaries and throws GuestMemoryError where no RAM is
 * (the hole, past the top); its live views (for virtio rings and buffers) lie in
 * one chunk, so a range across a 4 GiB chunk boundary has no view (an error too).
 */
import { GuestMemoryError } from '../bus/interfaces.js';
import type { GuestRam } from '../virtio/guest-ram.js';
import type { KvmVm } from '../accel/kvm/kvm.js';
import { mapAnonymous, type Mapping } from '../accel/kvm/sys.js';
import { MICROVM_MEMORY } from './microvm-map.js';

const GIB = 1024 ** 3;
/** The largest host mapping one koffi view (and so one KVM slot here) covers. */
export const MAX_CHUNK = 4 * GIB;

export interface RamRange {
  gpa: number;
  size: number;
}

/** The guest-physical RAM ranges for `ramBytes` of RAM: below the 32-bit hole, then from 4 GiB up. */
export function microvmRamLayout(ramBytes: number): RamRange[] {
  const low = Math.min(ramBytes, MICROVM_MEMORY.LOW_RAM_MAX);
  const ranges = [{ gpa: 0, size: low }];
  if (ramBytes > low) ranges.push({ gpa: MICROVM_MEMORY.HIGH_RAM, size: ramBytes - low });
  return ranges;
}

interface Chunk {
  gpa: number;
  bytes: Uint8Array;
}

export interface MicrovmRam {
  readonly ranges: readonly RamRange[];
  readonly memory: GuestRam;
  unmap(): void;
}

/** Calls `each` for the pieces of guest-physical [gpa, gpa + length) in the chunks; throws if a byte is in none. */
function forPieces(chunks: readonly Chunk[], gpa: number, length: number, each: (chunk: Chunk, at: number, done: number, n: number) => void): void {
  for (let done = 0; done < length;) {
    const address = gpa + done;
    const chunk = chunks.find((c) => address >= c.gpa && address < c.gpa + c.bytes.length);
    if (!chunk) throw new GuestMemoryError(gpa, length);
    const n = Math.min(length - done, chunk.gpa + chunk.bytes.length - address);
    each(chunk, address - chunk.gpa, done, n);
    done += n;
  }
}

/** Maps `ramBytes` of host memory into `vm` as the microvm's RAM; unmap() releases it (after the VM is closed). */
export function mapMicrovmRam(vm: KvmVm, ramBytes: number): MicrovmRam {
  const ranges = microvmRamLayout(ramBytes);
  const mappings: Mapping[] = [];
  const chunks: Chunk[] = [];
  const unmap = (): void => mappings.forEach((m) => m.unmap());
  try {
    for (const range of ranges) {
      for (let offset = 0; offset < range.size; offset += MAX_CHUNK) {
        const size = Math.min(MAX_CHUNK, range.size - offset);
        const mapping = mapAnonymous(size);
        mappings.push(mapping);
        vm.addMemory(range.gpa + offset, size, mapping.address);
        chunks.push({ gpa: range.gpa + offset, bytes: new Uint8Array(mapping.buffer) });
      }
    }
  } catch (err) {
    unmap();
    throw err;
  }
  const memory: GuestRam = {
    read: (gpa, dst) => forPieces(chunks, gpa, dst.length, (c, at, done, n) => dst.set(c.bytes.subarray(at, at + n), done)),
    write: (gpa, src) => forPieces(chunks, gpa, src.length, (c, at, done, n) => c.bytes.set(src.subarray(done, done + n), at)),
    view: (gpa, length) => {
      const chunk = chunks.find((c) => gpa >= c.gpa && gpa + length <= c.gpa + c.bytes.length);
      if (!chunk) throw new GuestMemoryError(gpa, length);
      return chunk.bytes.subarray(gpa - chunk.gpa, gpa - chunk.gpa + length);
    },
  };
  return { ranges, memory, unmap };
}
