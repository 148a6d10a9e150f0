/**
 * Physical memory protection: 16 entries (pmpcfg0/pmpcfg2 and pmpaddr0..15,
 * RV64, granularity 4 bytes) with the OFF, TOR, NA4 and NAPOT address modes.
 *
 * check(pa, size, access, priv): the lowest-numbered entry that matches any
 * byte of the access decides. It must cover all bytes (else the access fails);
 * its R/W/X bits apply to S/U accesses and, when the entry is locked (L), to
 * M-mode accesses too. With no matching entry, M-mode accesses succeed and S/U
 * accesses fail. Like QEMU, a hart whose entries are all OFF grants every
 * access, so a kernel booted directly in S-mode (tsemu's own SBI) needs no PMP
 * setup.
 *
 * Writes follow the WARL rules: locked entries ignore writes (and pmpaddr i
 * also when entry i + 1 is a locked TOR entry), the reserved W-without-R
 * combination clears W, and cfg bits 6:5 read as zero. Ranges are decoded into
 * doubles once per write; the owner flushes the TLB after any PMP write.
 */
import { CSR_OFF, type AccessKind } from './csr-defs.js';
import { PRIV_M } from '../layout.js';
import type { HartState } from './state.js';

const ENTRIES = 16;
const R = 1;
const W = 2;
const X = 4;
const MODE_SHIFT = 3;
const MODE_TOR = 1;
const MODE_NA4 = 2;
const MODE_NAPOT = 3;
const LOCK = 0x80;
const PERMISSION = [X, R, W];
const TWO32 = 0x1_0000_0000;

export class Pmp {
  private readonly starts = new Float64Array(ENTRIES);
  private readonly ends = new Float64Array(ENTRIES);
  private active = false;

  constructor(private readonly st: HartState) {
    this.decode();
  }

  /** Whether every byte of [pa, pa + size) may be accessed this way at privilege `priv`. */
  check(pa: number, size: number, access: AccessKind, priv: number): boolean {
    if (!this.active) return true;
    const end = pa + size;
    for (let i = 0; i < ENTRIES; i++) {
      const start = this.starts[i];
      const stop = this.ends[i];
      if (end <= start || pa >= stop) continue;
      if (pa < start || end > stop) return false;
      const cfg = this.cfg(i);
      if (priv === PRIV_M && (cfg & LOCK) === 0) return true;
      return (cfg & PERMISSION[access]) !== 0;
    }
    return priv === PRIV_M;
  }

  /** pmpcfg0 (reg 0) or pmpcfg2 (reg 2) as (lo, hi) through `out`. */
  readCfg(reg: 0 | 2, out: Int32Array): void {
    const off = this.st.base + CSR_OFF.PMPCFG + reg * 4;
    out[0] = this.st.dv.getInt32(off, true);
    out[1] = this.st.dv.getInt32(off + 4, true);
  }

  writeCfg(reg: 0 | 2, lo: number, hi: number): void {
    for (let b = 0; b < 8; b++) {
      const index = reg * 4 + b;
      if (this.cfg(index) & LOCK) continue;
      let value = ((b < 4 ? lo >>> (8 * b) : hi >>> (8 * (b - 4))) & 0x9f) >>> 0;
      if ((value & (R | W)) === W) value &= ~W;
      this.st.u8[this.st.base + CSR_OFF.PMPCFG + index] = value;
    }
    this.decode();
  }

  readAddr(index: number, out: Int32Array): void {
    out[0] = this.st.lo(CSR_OFF.PMPADDR + 8 * index) | 0;
    out[1] = this.st.hi(CSR_OFF.PMPADDR + 8 * index);
  }

  writeAddr(index: number, lo: number, hi: number): void {
    if (this.cfg(index) & LOCK) return;
    if (index + 1 < ENTRIES) {
      const next = this.cfg(index + 1);
      if (next & LOCK && ((next >>> MODE_SHIFT) & 3) === MODE_TOR) return;
    }
    this.st.set64(CSR_OFF.PMPADDR + 8 * index, lo, hi & 0x3f_ffff);
    this.decode();
  }

  private cfg(index: number): number {
    return this.st.u8[this.st.base + CSR_OFF.PMPCFG + index];
  }

  private addrValue(index: number): number {
    return this.st.getDouble64(CSR_OFF.PMPADDR + 8 * index);
  }

  /** Recomputes every entry's [start, end) byte range from the stored CSRs. */
  decode(): void {
    this.active = false;
    for (let i = 0; i < ENTRIES; i++) {
      const mode = (this.cfg(i) >>> MODE_SHIFT) & 3;
      let start = 0;
      let end = 0;
      if (mode === MODE_TOR) {
        start = i === 0 ? 0 : this.addrValue(i - 1) * 4;
        end = this.addrValue(i) * 4;
      } else if (mode === MODE_NA4) {
        start = this.addrValue(i) * 4;
        end = start + 4;
      } else if (mode === MODE_NAPOT) {
        const lo = this.st.lo(CSR_OFF.PMPADDR + 8 * i);
        const hi = this.st.hi(CSR_OFF.PMPADDR + 8 * i);
        const ones = trailingOnes(lo, hi);
        // clear the trailing ones exactly (the value may exceed 2^53) before scaling to bytes
        const baseLo = ones >= 32 ? 0 : (lo & ~(2 ** ones - 1)) >>> 0;
        const baseHi = ones >= 32 ? (hi & ~(2 ** (ones - 32) - 1)) >>> 0 : hi >>> 0;
        start = (baseLo + baseHi * TWO32) * 4;
        end = start + 2 ** (ones + 3);
      }
      this.starts[i] = start;
      this.ends[i] = end;
      if (mode !== 0) this.active = true;
    }
  }
}

function trailingOnes(lo: number, hi: number): number {
  if ((lo | 0) !== -1) return 31 - Math.clz32(~lo & (lo + 1));
  return 32 + (31 - Math.clz32(~hi & (hi + 1)));
}
