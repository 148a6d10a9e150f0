/**
 * Conversions between floating point and integers (fcvt.{w,wu,l,lu}.{s,d}
 * and back) and between the two formats (fcvt.s.d, fcvt.d.s).
 *
 * Theory of operation. Float → integer rounds the value to an integer by the
 * rounding mode (the fraction below 2^52 is exact in a double), then checks
 * the target's range: out of range, ±∞ and NaN give the saturated values of
 * the RISC-V table (NaN and +overflow the largest, −overflow the smallest;
 * 0 for unsigned) and raise NV alone; in range, an inexact result raises NX.
 * 32-bit results are sign-extended to 64 bits, unsigned ones included. The
 * 64-bit integer travels as two 32-bit halves in `intResult` (no BigInt).
 * Integer → float forms the exact value as a double-double from the halves
 * and rounds it once; binary64 → binary32 rounds once; binary32 → binary64 is
 * exact. Signaling-NaN operands have already raised NV (executor).
 */
import { classifyFraction, FLAG_NV, fpFlags, roundInteger, roundToFormat, type FloatFormat } from './round.js';
import { eftLow, twoSum } from './eft.js';

export const INT_W = 0;
export const INT_WU = 1;
export const INT_L = 2;
export const INT_LU = 3;

const TWO32 = 4294967296;
const TWO52 = 4503599627370496;
const TWO63 = 9223372036854775808;
const TWO64 = 18446744073709551616;

/** A 64-bit integer register value as halves. */
export const intResult = { lo: 0, hi: 0 };

function setInt64(lo: number, hi: number): void {
  intResult.lo = lo | 0;
  intResult.hi = hi | 0;
}

/** An integral double in the 64-bit range [-2^63, 2^64) → two's-complement halves. */
function setIntegral(v: number): void {
  const hi = Math.floor(v / TWO32);
  setInt64(v - hi * TWO32, hi);
}

/** x rounded to an integer by rm (raising NX when inexact); ±∞ and huge values pass through. */
function roundToInteger(x: number, rm: number): number {
  const negative = x < 0;
  const magnitude = Math.abs(x);
  if (!(magnitude < TWO52)) return x;
  const whole = Math.floor(magnitude);
  const m = roundInteger(whole, classifyFraction(magnitude - whole), negative, rm);
  return negative ? -m : m;
}

/** fcvt.{w,wu,l,lu}.{s,d}: the result is left in intResult. */
export function floatToInt(x: number, kind: number, rm: number): void {
  const saved = fpFlags.value;
  const v = x !== x ? NaN : roundToInteger(x, rm);
  const low = kind === INT_W ? -2147483648 : kind === INT_L ? -TWO63 : 0;
  const high = kind === INT_W ? 2147483647 : kind === INT_WU ? TWO32 - 1 : kind === INT_L ? TWO63 : TWO64;
  // The 64-bit bounds are exclusive (2^63 and 2^64 are not representable), the 32-bit ones inclusive.
  const inRange = v >= low && (kind === INT_L || kind === INT_LU ? v < high : v <= high);
  if (!inRange) {
    fpFlags.value = saved | FLAG_NV;
    const toMax = x !== x || v > 0;
    switch (kind) {
      case INT_W:
        return setInt64(toMax ? 0x7fffffff : 0x80000000, toMax ? 0 : -1);
      case INT_WU:
        return setInt64(toMax ? -1 : 0, toMax ? -1 : 0);
      case INT_L:
        return setInt64(toMax ? -1 : 0, toMax ? 0x7fffffff : 0x80000000);
      default:
        return setInt64(toMax ? -1 : 0, toMax ? -1 : 0);
    }
  }
  if (kind === INT_W || kind === INT_WU) {
    const w = v | 0;
    return setInt64(w, w < 0 ? -1 : 0);
  }
  setIntegral(v);
}

/** fcvt.{s,d}.{w,wu,l,lu}: the integer register's halves → the nearest value of fmt by rm. */
export function intToFloat(lo: number, hi: number, kind: number, fmt: FloatFormat, rm: number): number {
  let h: number;
  let l = 0;
  switch (kind) {
    case INT_W:
      h = lo | 0;
      break;
    case INT_WU:
      h = lo >>> 0;
      break;
    default:
      h = twoSum((kind === INT_L ? hi | 0 : hi >>> 0) * TWO32, lo >>> 0);
      l = eftLow.value;
  }
  return h === 0 ? 0 : roundToFormat(h, l, 0, fmt, rm);
}

/** fcvt.s.d, and any narrowing of a finite or infinite value; NaN stays NaN. */
export function narrow(x: number, fmt: FloatFormat, rm: number): number {
  if (x !== x || x === 0 || x === Infinity || x === -Infinity) return x;
  return roundToFormat(x, 0, 0, fmt, rm);
}
