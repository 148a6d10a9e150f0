/**
 * The MMIO bus: guest-physical address ranges mapped to MmioDevices.
 *
 * A load or store must fall entirely inside one mapped range and be naturally
 * aligned; otherwise the bus reports failure (false) and the CPU raises an
 * access fault, as the privileged spec allows for accesses no device
 * decodes or a region does not support. An 8-byte access becomes two 4-byte
 * device accesses, low word first, so devices never see BigInt or 8-byte
 * values. A load leaves its value in `lo` and `hi` (hi is 0 below 8 bytes);
 * a store takes the value as two 32-bit halves.
 *
 * Ranges are kept sorted; lookups are a binary search, with the last region
 * hit tried first (guests hammer one device at a time).
 */
import type { AccessSize, MmioDevice } from './interfaces.js';

export type BusAccessSize = AccessSize | 8;

interface Region {
  readonly base: number;
  readonly end: number; // exclusive
  readonly device: MmioDevice;
  readonly name: string;
}

export class MmioBus {
  private readonly regions: Region[] = [];
  private last: Region | undefined;
  /** The result of the last successful load: low and high 32 bits (unsigned). */
  lo = 0;
  hi = 0;

  /** Maps [base, base + size) to `device`; overlapping an existing range is an error. */
  map(base: number, size: number, device: MmioDevice, name: string): void {
    if (!Number.isSafeInteger(base) || !Number.isSafeInteger(size) || base < 0 || size <= 0) {
      throw new RangeError(`${name}: bad MMIO range 0x${base.toString(16)}+0x${size.toString(16)}`);
    }
    const region: Region = { base, end: base + size, device, name };
    const clash = this.regions.find((r) => r.base < region.end && region.base < r.end);
    if (clash) throw new RangeError(`${name} at 0x${base.toString(16)} overlaps ${clash.name} at 0x${clash.base.toString(16)}`);
    this.regions.push(region);
    this.regions.sort((a, b) => a.base - b.base);
  }

  /** The region holding the whole of [addr, addr + size), if any. */
  private find(addr: number, size: number): Region | undefined {
    const last = this.last;
    if (last && addr >= last.base && addr + size <= last.end) return last;
    let low = 0;
    let high = this.regions.length - 1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      const r = this.regions[mid];
      if (addr < r.base) high = mid - 1;
      else if (addr >= r.end) low = mid + 1;
      else {
        if (addr + size > r.end) return undefined;
        this.last = r;
        return r;
      }
    }
    return undefined;
  }

  /** Reads `size` bytes at `addr` into lo/hi; false when unmapped or misaligned. */
  load(addr: number, size: BusAccessSize): boolean {
    if (addr % size !== 0) return false;
    const r = this.find(addr, size);
    if (!r) return false;
    const offset = addr - r.base;
    if (size === 8) {
      this.lo = r.device.read(offset, 4) >>> 0;
      this.hi = r.device.read(offset + 4, 4) >>> 0;
    } else {
      this.lo = r.device.read(offset, size) >>> 0;
      this.hi = 0;
    }
    return true;
  }

  /** Writes the low `size` bytes of the value (lo, hi halves) at `addr`; false when unmapped or misaligned. */
  store(addr: number, size: BusAccessSize, lo: number, hi: number): boolean {
    if (addr % size !== 0) return false;
    const r = this.find(addr, size);
    if (!r) return false;
    const offset = addr - r.base;
    if (size === 8) {
      r.device.write(offset, 4, lo >>> 0);
      r.device.write(offset + 4, 4, hi >>> 0);
    } else {
      r.device.write(offset, size, size === 4 ? lo >>> 0 : lo & ((1 << (size * 8)) - 1));
    }
    return true;
  }
}
