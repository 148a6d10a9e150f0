/**
 * The IEEE 754 arithmetic operations of RISC-V F and D: add, subtract,
 * multiply, divide, square root, and fused multiply-add, for either format.
 *
 * Theory of operation. Operands are JS numbers holding exact binary32 or
 * binary64 values (NaN means any NaN: the executor has already raised NV for
 * signaling NaNs, and every NaN result becomes the canonical NaN). Special
 * operands (NaN, infinities, zeros) are settled here with the invalid and
 * divide-by-zero rules; finite non-zero cases build the exact result as a
 * scaled double-double and hand it to roundToFormat, the one place that
 * rounds. Operands and results within 2^±500 are used as they are; others
 * are split into mantissa × 2^exponent first so products, quotients and
 * roots are formed near 1. Either way the error terms are exact:
 *   add   TwoSum (operands scaled by 1/4 when the sum could overflow)
 *   mul   TwoProduct of the mantissas
 *   div   the exact remainder a - q·b tells on which side of q the quotient lies
 *   sqrt  the exact remainder a - s·s, likewise
 * Binary32 operands are binary64 values too, so the same code serves both
 * formats; only the rounding target differs. The fused multiply-add of two
 * binary32 products is exact in doubles (a 48-bit product plus TwoSum); for
 * binary64 see fma64.ts (doubles when they suffice, else BigInt: the one
 * BigInt use in the FPU).
 */
import { pow2, splitExponent, splitMantissa } from './bits.js';
import { eftLow, productError, twoSum } from './eft.js';
import { fusedMultiplyAdd64 } from './fma64.js';
import { BINARY64, FLAG_DZ, FLAG_NV, fpFlags, RM_RDN, roundToFormat, type FloatFormat } from './round.js';

const HUGE = pow2(1020);
const TINY = pow2(-1020);
const MODERATE_HIGH = pow2(500);
const MODERATE_LOW = pow2(-500);
/** A sticky tail: far below half an ulp of any h it is scaled by. */
const STICKY = pow2(-60);

function invalid(): number {
  fpFlags.value |= FLAG_NV;
  return NaN;
}

/** Sign of an exact zero sum x + y (x + y === 0): RISC-V/IEEE rules. */
function zeroSum(x: number, y: number, rm: number): number {
  if (x === 0 && y === 0 && Object.is(x, y)) return x;
  return rm === RM_RDN ? -0 : 0;
}

export function fpAdd(x: number, y: number, fmt: FloatFormat, rm: number): number {
  if (x !== x || y !== y) return NaN;
  if (x === Infinity || x === -Infinity) return y === -x ? invalid() : x;
  if (y === Infinity || y === -Infinity) return y;
  const s = x + y;
  if (s === 0) return zeroSum(x, y, rm);
  const ax = Math.abs(x);
  const ay = Math.abs(y);
  if (ax < HUGE && ay < HUGE) return roundToFormat(twoSum(x, y), eftLow.value, 0, fmt, rm);
  // Near the top of the range: the smaller operand either only makes the tail, or scales down exactly.
  if (ax < TINY) return roundToFormat(y, x, 0, fmt, rm);
  if (ay < TINY) return roundToFormat(x, y, 0, fmt, rm);
  return roundToFormat(twoSum(x / 4, y / 4), eftLow.value, 2, fmt, rm);
}

export function fpMul(x: number, y: number, fmt: FloatFormat, rm: number): number {
  if (x !== x || y !== y) return NaN;
  const negative = isNegative(x) !== isNegative(y);
  if (x === Infinity || x === -Infinity || y === Infinity || y === -Infinity) {
    if (x === 0 || y === 0) return invalid();
    return negative ? -Infinity : Infinity;
  }
  if (x === 0 || y === 0) return negative ? -0 : 0;
  const p = x * y;
  if (moderate(x) && moderate(y) && moderate(p)) return roundToFormat(p, productError(x, y, p), 0, fmt, rm);
  const mx = splitMantissa(x);
  const ex = splitExponent.value;
  const my = splitMantissa(y);
  const ey = splitExponent.value;
  const mp = mx * my;
  return roundToFormat(mp, productError(mx, my, mp), ex + ey, fmt, rm);
}

export function fpDiv(x: number, y: number, fmt: FloatFormat, rm: number): number {
  if (x !== x || y !== y) return NaN;
  const negative = isNegative(x) !== isNegative(y);
  const xInf = x === Infinity || x === -Infinity;
  const yInf = y === Infinity || y === -Infinity;
  if (xInf) return yInf ? invalid() : negative ? -Infinity : Infinity;
  if (yInf) return negative ? -0 : 0;
  if (y === 0) {
    if (x === 0) return invalid();
    fpFlags.value |= FLAG_DZ;
    return negative ? -Infinity : Infinity;
  }
  if (x === 0) return negative ? -0 : 0;
  const direct = x / y;
  if (moderate(x) && moderate(y) && moderate(direct)) return roundQuotient(x, y, direct, 0, fmt, rm);
  const mx = splitMantissa(x);
  const ex = splitExponent.value;
  const my = splitMantissa(y);
  return roundQuotient(mx, my, mx / my, ex - splitExponent.value, fmt, rm);
}

/** Rounds 2^scale × x / y given q = fl(x / y): the exact remainder x - q·y says on which side of q it lies. */
function roundQuotient(x: number, y: number, q: number, scale: number, fmt: FloatFormat, rm: number): number {
  const qy = q * y;
  const remainder = x - qy - productError(q, y, qy);
  const tail = remainder === 0 ? 0 : remainder > 0 === y > 0 ? Math.abs(q) * STICKY : -Math.abs(q) * STICKY;
  return roundToFormat(q, tail, scale, fmt, rm);
}

export function fpSqrt(x: number, fmt: FloatFormat, rm: number): number {
  if (x !== x) return NaN;
  if (x === 0 || x === Infinity) return x;
  if (x < 0) return invalid();
  if (moderate(x)) return roundRoot(x, Math.sqrt(x), 0, fmt, rm);
  let m = splitMantissa(x);
  let e = splitExponent.value;
  if (e % 2 !== 0) {
    m *= 2;
    e -= 1;
  }
  return roundRoot(m, Math.sqrt(m), e / 2, fmt, rm);
}

/** Rounds 2^scale × √x given s = fl(√x): the exact remainder x - s·s says on which side of s it lies. */
function roundRoot(x: number, s: number, scale: number, fmt: FloatFormat, rm: number): number {
  const ss = s * s;
  const remainder = x - ss - productError(s, s, ss);
  return roundToFormat(s, remainder === 0 ? 0 : remainder > 0 ? s * STICKY : -s * STICKY, scale, fmt, rm);
}

/** x × y + z with one rounding. */
export function fpFusedMultiplyAdd(x: number, y: number, z: number, fmt: FloatFormat, rm: number): number {
  if (x !== x || y !== y) return NaN;
  const xInf = x === Infinity || x === -Infinity;
  const yInf = y === Infinity || y === -Infinity;
  // ∞ × 0 is invalid even when the addend is a quiet NaN.
  if ((xInf && y === 0) || (yInf && x === 0)) return invalid();
  if (z !== z) return NaN;
  const zInf = z === Infinity || z === -Infinity;
  if (xInf || yInf) {
    const product = isNegative(x) !== isNegative(y) ? -Infinity : Infinity;
    return zInf && z !== product ? invalid() : product;
  }
  if (zInf) return z;
  if (x === 0 || y === 0) {
    const product = isNegative(x) !== isNegative(y) ? -0 : 0;
    return z === 0 ? zeroSum(product, z, rm) : z;
  }
  if (fmt === BINARY64) return fusedMultiplyAdd64(x, y, z, rm);
  // Binary32 operands: the product is exact in a double (at most 48 bits, never tiny), the sum exact in two.
  const p = x * y;
  const s = p + z;
  if (s === 0) return zeroSum(p, z, rm);
  return roundToFormat(twoSum(p, z), eftLow.value, 0, fmt, rm);
}

/** Far enough from overflow and underflow that products and their error terms are exact doubles. */
function moderate(x: number): boolean {
  const a = Math.abs(x);
  return a < MODERATE_HIGH && a > MODERATE_LOW;
}

function isNegative(x: number): boolean {
  return x < 0 || Object.is(x, -0);
}
