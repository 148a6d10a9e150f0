/**
 * Correct rounding of an exactly known value to binary32 or binary64, for any
 * RISC-V rounding mode, with the IEEE 754 exception flags.
 *
 * Theory of operation. Every operation hands over its exact result as
 * 2^scale × (h + l), a double-double: h is a finite non-zero double and
 * h = RNE(h + l), so |l| <= ulp(h)/2 (what TwoSum and TwoProduct give). When
 * only the sign of the tail is known (division, square root: the exact
 * remainder's sign), l is a stand-in of that sign far below ulp(h)/2; such a
 * value can never be a tie, which is right because a true quotient or root is
 * never halfway between two p-bit numbers at p <= 53. The scale lets callers
 * keep h near 1 so nothing under- or overflows before the single rounding here.
 *
 * Rounding picks the quantum Q = 2^(max(e, emin) - p + 1) for the exact value's
 * exponent e, splits h/Q into an integer m and a fraction (both exact), and
 * uses the fraction and the sign of l to say whether the dropped part is zero,
 * below, exactly at, or above half a quantum. Tininess is detected after
 * rounding, as RISC-V specifies: the value is tiny when rounding it to p bits
 * with an unbounded exponent gives a magnitude below 2^emin; UF is raised
 * when the result is tiny and inexact. Overflow gives infinity or the largest
 * finite number by rounding mode, with OF and NX.
 *
 * Fast paths: under RNE an h in binary64's normal range already is the
 * result, and for binary32 Math.fround(h) is unless h sits exactly halfway
 * between two singles and the tail decides.
 *
 * Flags accumulate in `fpFlags.value` (RISC-V fflags bit layout); the executor
 * clears it before an instruction and merges it into fflags after.
 */
import { exponentField, isPowerOfTwo, pow2, scaleByPow2 } from './bits.js';

export const RM_RNE = 0;
export const RM_RTZ = 1;
export const RM_RDN = 2;
export const RM_RUP = 3;
export const RM_RMM = 4;
export const RM_DYN = 7;

export const FLAG_NX = 1;
export const FLAG_UF = 2;
export const FLAG_OF = 4;
export const FLAG_DZ = 8;
export const FLAG_NV = 16;

export const fpFlags = { value: 0 };

export interface FloatFormat {
  /** Significand bits including the hidden bit. */
  readonly precision: number;
  readonly emin: number;
  readonly emax: number;
  readonly maxFinite: number;
  readonly minNormal: number;
}

export const BINARY32: FloatFormat = {
  precision: 24,
  emin: -126,
  emax: 127,
  maxFinite: (2 - pow2(-23)) * pow2(127),
  minNormal: pow2(-126),
};

export const BINARY64: FloatFormat = {
  precision: 53,
  emin: -1022,
  emax: 1023,
  maxFinite: Number.MAX_VALUE,
  minNormal: pow2(-1022),
};

/** Above the tininess edge of binary64 and below that of overflow for binary32: where the RNE fast paths apply. */
const SAFE_MIN64 = pow2(-1021);
const SAFE_MAX32 = pow2(127);

/**
 * RNE to binary32 of h + l in the normal range: Math.fround(h) is right
 * unless h lies exactly halfway between two singles and the tail l breaks the
 * tie the other way (h's own rounding already broke ties in 53 bits).
 */
function roundSingleNearestEven(h: number, l: number): number {
  const r = Math.fround(h);
  const m = h - r;
  if (m === 0 && l === 0) return r;
  fpFlags.value |= FLAG_NX;
  if (m === 0 || l === 0) return r;
  const other = r + 2 * m;
  if (Math.fround(other) !== other) return r;
  return l > 0 === m > 0 ? other : r;
}

// What the part dropped below the quantum amounts to.
const EXACT = 0;
const BELOW_HALF = 1;
const HALF = 2;
const ABOVE_HALF = 3;

/**
 * Rounds a non-negative integer magnitude m plus a dropped part (EXACT …
 * ABOVE_HALF of one unit) by rounding mode; raises NX when inexact.
 */
export function roundInteger(m: number, dropped: number, negative: boolean, rm: number): number {
  if (dropped === EXACT) return m;
  fpFlags.value |= FLAG_NX;
  switch (rm) {
    case RM_RNE:
      return dropped === ABOVE_HALF || (dropped === HALF && m % 2 === 1) ? m + 1 : m;
    case RM_RDN:
      return negative ? m + 1 : m;
    case RM_RUP:
      return negative ? m : m + 1;
    case RM_RMM:
      return dropped >= HALF ? m + 1 : m;
    default:
      return m;
  }
}

/** Classifies a fraction 0 <= f < 1 as EXACT … ABOVE_HALF. */
export function classifyFraction(f: number): number {
  if (f === 0) return EXACT;
  if (f < 0.5) return BELOW_HALF;
  return f === 0.5 ? HALF : ABOVE_HALF;
}

/** Result of splitAtQuantum: the truncated magnitude and the dropped part (an object: no boxing per write). */
const split = { truncated: 0, dropped: EXACT };

/**
 * Splits the magnitude a + b (a > 0 normal, |b| <= ulp(a)/2, exact value
 * exponent e) at the quantum 2^qs, qs relative to a's scale.
 */
function splitAtQuantum(a: number, b: number, qs: number, e: number, qe: number): void {
  if (e - qe < -2) {
    // Below a quarter of the quantum: rounds like any tiny non-zero amount.
    split.truncated = 0;
    split.dropped = BELOW_HALF;
    return;
  }
  const t = scaleByPow2(a, -qs);
  const m = Math.floor(t);
  const f = t - m;
  split.truncated = m;
  if (f !== 0) {
    split.dropped = f !== 0.5 ? classifyFraction(f) : b === 0 ? HALF : b > 0 ? ABOVE_HALF : BELOW_HALF;
  } else if (b === 0) {
    split.dropped = EXACT;
  } else {
    // The whole tail is b, at most half a quantum: a tie only when exactly half.
    const half = Math.abs(scaleByPow2(b, 1 - qs)) === 1;
    if (b > 0) {
      split.dropped = half ? HALF : BELOW_HALF;
    } else {
      split.truncated = m - 1;
      split.dropped = half ? HALF : ABOVE_HALF;
    }
  }
}

/** The exact value 2^scale × (h + l) rounded to `fmt` under `rm`, with flags raised. */
export function roundToFormat(h: number, l: number, scale: number, fmt: FloatFormat, rm: number): number {
  if (rm === RM_RNE && scale === 0) {
    const magnitude = Math.abs(h);
    if (fmt === BINARY64 && magnitude >= SAFE_MIN64) {
      // h is already the RNE result, and a finite h means the exact value does not overflow.
      if (l !== 0) fpFlags.value |= FLAG_NX;
      return h;
    }
    if (fmt === BINARY32 && magnitude >= BINARY32.minNormal && magnitude < SAFE_MAX32) return roundSingleNearestEven(h, l);
  }
  const field = exponentField(h);
  if (field === 0) {
    // A subnormal h (a sum of subnormals, exact): renormalise first.
    h *= pow2(128);
    l *= pow2(128);
    scale -= 128;
  }
  const negative = h < 0;
  const a = negative ? -h : h;
  const b = negative ? -l : l;
  const p = fmt.precision;
  const aExp = exponentField(a) - 1023;
  const e = aExp + scale - (b < 0 && isPowerOfTwo(a) ? 1 : 0);
  if (e > fmt.emax) return overflow(negative, fmt, rm);

  let tiny = false;
  const saved = fpFlags.value;
  if (e < fmt.emin) {
    // Tininess after rounding: round with an unbounded exponent range and look for a carry up to 2^emin.
    const qeFull = e - p + 1;
    splitAtQuantum(a, b, qeFull - scale, e, qeFull);
    const m = roundInteger(split.truncated, split.dropped, negative, rm);
    tiny = !(e === fmt.emin - 1 && m === pow2(p));
    fpFlags.value = saved;
  }
  const qe = Math.max(e, fmt.emin) - p + 1;
  splitAtQuantum(a, b, qe - scale, e, qe);
  const m = roundInteger(split.truncated, split.dropped, negative, rm);
  if (tiny && split.dropped !== EXACT) fpFlags.value |= FLAG_UF;
  if (e === fmt.emax && m === pow2(p)) return overflow(negative, fmt, rm);
  const magnitude = m * pow2(qe);
  return negative ? -magnitude : magnitude;
}

function overflow(negative: boolean, fmt: FloatFormat, rm: number): number {
  fpFlags.value |= FLAG_OF | FLAG_NX;
  const toInfinity = rm === RM_RNE || rm === RM_RMM || (rm === RM_RUP && !negative) || (rm === RM_RDN && negative);
  const magnitude = toInfinity ? Infinity : fmt.maxFinite;
  return negative ? -magnitude : magnitude;
}
