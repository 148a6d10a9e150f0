/**
 * 64-bit integer arithmetic on 32-bit halves for the interpreter: no BigInt
 * on the hot path. A 64-bit value is a (lo, hi) pair of int32 numbers; results
 * go to the shared pair R (R.lo, R.hi), which callers copy out at once.
 *
 * Multiplication splits 32-bit words into 16-bit limbs so every partial
 * product stays exact in a double. Division of two values that fit in 32
 * bits (the common case) uses JS numbers; only wider operands use BigInt,
 * as the task permits for div/rem. RISC-V's edge cases (division by zero,
 * the most negative number divided by -1) give the spec's results, never a trap.
 */

export class Pair {
  lo = 0;
  hi = 0;
}

/** Where the functions below leave their 64-bit result. */
export const R = new Pair();

const TWO32 = 4294967296;

export function add64(alo: number, ahi: number, blo: number, bhi: number): void {
  const lo = (alo + blo) | 0;
  R.hi = (ahi + bhi + ((lo >>> 0) < (alo >>> 0) ? 1 : 0)) | 0;
  R.lo = lo;
}

export function sub64(alo: number, ahi: number, blo: number, bhi: number): void {
  R.lo = (alo - blo) | 0;
  R.hi = (ahi - bhi - ((alo >>> 0) < (blo >>> 0) ? 1 : 0)) | 0;
}

export function lessThan(alo: number, ahi: number, blo: number, bhi: number): boolean {
  return ahi < bhi || (ahi === bhi && alo >>> 0 < blo >>> 0);
}

export function lessThanUnsigned(alo: number, ahi: number, blo: number, bhi: number): boolean {
  return ahi >>> 0 < bhi >>> 0 || (ahi === bhi && alo >>> 0 < blo >>> 0);
}

/** Shift left by s (0..63). */
export function sll64(lo: number, hi: number, s: number): void {
  if (s & 32) {
    R.hi = lo << (s & 31);
    R.lo = 0;
  } else if (s === 0) {
    R.lo = lo;
    R.hi = hi;
  } else {
    R.hi = (hi << s) | (lo >>> (32 - s));
    R.lo = lo << s;
  }
}

/** Logical shift right by s (0..63). */
export function srl64(lo: number, hi: number, s: number): void {
  if (s & 32) {
    R.lo = hi >>> (s & 31) | 0;
    R.hi = 0;
  } else if (s === 0) {
    R.lo = lo;
    R.hi = hi;
  } else {
    R.lo = (lo >>> s) | (hi << (32 - s));
    R.hi = (hi >>> s) | 0;
  }
}

/** Arithmetic shift right by s (0..63). */
export function sra64(lo: number, hi: number, s: number): void {
  if (s & 32) {
    R.lo = hi >> (s & 31);
    R.hi = hi >> 31;
  } else if (s === 0) {
    R.lo = lo;
    R.hi = hi;
  } else {
    R.lo = (lo >>> s) | (hi << (32 - s));
    R.hi = hi >> s;
  }
}

/** Rotate left by s (0..63). */
export function rol64(lo: number, hi: number, s: number): void {
  if (s & 32) {
    const t = lo;
    lo = hi;
    hi = t;
  }
  const r = s & 31;
  if (r === 0) {
    R.lo = lo;
    R.hi = hi;
  } else {
    R.lo = (lo << r) | (hi >>> (32 - r));
    R.hi = (hi << r) | (lo >>> (32 - r));
  }
}

/** The full 64-bit product of two unsigned 32-bit numbers. */
export function mulU32(a: number, b: number): void {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const p00 = a0 * b0;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  R.lo = (mid << 16) | (p00 & 0xffff);
  R.hi = (a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) | 0;
}

/** The low 64 bits of a 64 × 64 product (signedness does not matter). */
export function mul64(alo: number, ahi: number, blo: number, bhi: number): void {
  mulU32(alo >>> 0, blo >>> 0);
  R.hi = (R.hi + Math.imul(alo, bhi) + Math.imul(ahi, blo)) | 0;
}

/** The high 64 bits of the unsigned 128-bit product. */
export function mulhu64(alo: number, ahi: number, blo: number, bhi: number): void {
  const a0 = alo >>> 0;
  const a1 = ahi >>> 0;
  const b0 = blo >>> 0;
  const b1 = bhi >>> 0;
  mulU32(a0, b0);
  const p00hi = R.hi >>> 0;
  mulU32(a0, b1);
  const p01lo = R.lo >>> 0;
  const p01hi = R.hi >>> 0;
  mulU32(a1, b0);
  const p10lo = R.lo >>> 0;
  const p10hi = R.hi >>> 0;
  mulU32(a1, b1);
  const p11lo = R.lo >>> 0;
  const p11hi = R.hi >>> 0;
  const c1 = Math.floor((p00hi + p01lo + p10lo) / TWO32);
  const t2 = p01hi + p10hi + p11lo + c1;
  const c2 = Math.floor(t2 / TWO32);
  R.lo = t2 | 0;
  R.hi = (p11hi + c2) | 0;
}

/** The high 64 bits of the signed × signed product. */
export function mulh64(alo: number, ahi: number, blo: number, bhi: number): void {
  mulhu64(alo, ahi, blo, bhi);
  let lo = R.lo;
  let hi = R.hi;
  if (ahi < 0) {
    sub64(lo, hi, blo, bhi);
    lo = R.lo;
    hi = R.hi;
  }
  if (bhi < 0) sub64(lo, hi, alo, ahi);
  else {
    R.lo = lo;
    R.hi = hi;
  }
}

/** The high 64 bits of the signed (a) × unsigned (b) product. */
export function mulhsu64(alo: number, ahi: number, blo: number, bhi: number): void {
  mulhu64(alo, ahi, blo, bhi);
  if (ahi < 0) sub64(R.lo, R.hi, blo, bhi);
}

function fromBig(v: bigint): void {
  R.lo = Number(BigInt.asIntN(32, v));
  R.hi = Number(BigInt.asIntN(32, v >> 32n));
}

function toBig(lo: number, hi: number, signed: boolean): bigint {
  const v = (BigInt(hi) << 32n) | BigInt(lo >>> 0);
  return signed ? v : BigInt.asUintN(64, v);
}

/** Whether (lo, hi) is a sign-extended 32-bit number. */
function fits32(lo: number, hi: number): boolean {
  return hi === lo >> 31;
}

function setInt(v: number): void {
  R.lo = v | 0;
  R.hi = v < 0 ? -1 : 0;
}

/** div and rem (signed, 64-bit); `rem` selects the remainder. */
export function divRem64(alo: number, ahi: number, blo: number, bhi: number, rem: boolean): void {
  if (blo === 0 && bhi === 0) {
    if (rem) {
      R.lo = alo;
      R.hi = ahi;
    } else R.lo = R.hi = -1;
    return;
  }
  if (fits32(alo, ahi) && fits32(blo, bhi)) {
    // Exact in doubles (even -2^31 / -1 = 2^31, which setInt widens correctly).
    setInt(rem ? alo % blo : Math.trunc(alo / blo));
    return;
  }
  const a = toBig(alo, ahi, true);
  const b = toBig(blo, bhi, true);
  fromBig(rem ? a % b : a / b);
}

/** divu and remu (unsigned, 64-bit). */
export function divRemU64(alo: number, ahi: number, blo: number, bhi: number, rem: boolean): void {
  if (blo === 0 && bhi === 0) {
    if (rem) {
      R.lo = alo;
      R.hi = ahi;
    } else R.lo = R.hi = -1;
    return;
  }
  if (ahi === 0 && bhi === 0) {
    const a = alo >>> 0;
    const b = blo >>> 0;
    R.lo = (rem ? a % b : Math.floor(a / b)) | 0;
    R.hi = 0;
    return;
  }
  const a = toBig(alo, ahi, false);
  const b = toBig(blo, bhi, false);
  fromBig(rem ? a % b : a / b);
}

/** divw/remw: 32-bit signed; the result is a sign-extended 32-bit number. */
export function divRemW(a: number, b: number, rem: boolean): number {
  if (b === 0) return rem ? a : -1;
  if (a === -0x80000000 && b === -1) return rem ? 0 : a;
  return rem ? a % b | 0 : (a / b) | 0;
}

/** divuw/remuw: 32-bit unsigned; the result is sign-extended from bit 31. */
export function divRemUW(a: number, b: number, rem: boolean): number {
  if (b === 0) return rem ? a : -1;
  const ua = a >>> 0;
  const ub = b >>> 0;
  return (rem ? ua % ub : Math.floor(ua / ub)) | 0;
}

export function popcount32(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
}

export function ctz32(v: number): number {
  return v === 0 ? 32 : 31 - Math.clz32(v & -v);
}

/** orc.b on one word: each byte becomes 0xff if non-zero. */
export function orcb32(v: number): number {
  return (v & 0xff ? 0xff : 0) | (v & 0xff00 ? 0xff00 : 0) | (v & 0xff0000 ? 0xff0000 : 0) | (v & 0xff000000 ? 0xff000000 : 0);
}

export function bswap32(v: number): number {
  return ((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24);
}
