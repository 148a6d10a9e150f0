/**
 * Bit-level helpers on binary64 values without BigInt: exponent fields, exact
 * powers of two and scaling, and the mantissa/exponent split.
 *
 * Theory of operation. One 8-byte scratch buffer is viewed as a Float64Array
 * and an Int32Array (little-endian host: word 0 is the low half of a double);
 * storing a double and reading its words gives its IEEE fields exactly, and
 * the reverse builds a double from fields. Only finite non-NaN values pass
 * through here: the FPU classifies NaNs from register bits and only ever
 * produces canonical NaNs.
 */

const scratch = new ArrayBuffer(8);
const f64 = new Float64Array(scratch);
const i32 = new Int32Array(scratch);

/** Biased exponent field (0..2047) of a double. */
export function exponentField(x: number): number {
  f64[0] = x;
  return (i32[1]! >>> 20) & 0x7ff;
}

/** True when a finite non-zero double is a power of two (all fraction bits zero, normal). */
export function isPowerOfTwo(x: number): boolean {
  f64[0] = x;
  return (i32[1]! & 0xfffff) === 0 && i32[0] === 0 && (i32[1]! & 0x7ff00000) !== 0;
}

/** 2^k exactly, for -1074 <= k <= 1023. */
export function pow2(k: number): number {
  if (k >= -1022) {
    i32[0] = 0;
    i32[1] = (k + 1023) << 20;
  } else {
    const bit = k + 1074;
    i32[0] = bit < 32 ? 1 << bit : 0;
    i32[1] = bit < 32 ? 0 : 1 << (bit - 32);
  }
  return f64[0]!;
}

/** x × 2^k, exact whenever x and the result are normal (steps of at most 2^±1000 keep intermediates in range). */
export function scaleByPow2(x: number, k: number): number {
  while (k > 1000) {
    x *= pow2(1000);
    k -= 1000;
  }
  while (k < -1000) {
    x *= pow2(-1000);
    k += 1000;
  }
  return x * pow2(k);
}

/**
 * Splits a finite non-zero double into mantissa × 2^exponent with the mantissa
 * in [1, 2) (sign kept); the exponent is left in `splitExponent.value`.
 */
export function splitMantissa(x: number): number {
  let adjust = 0;
  f64[0] = x;
  if ((i32[1]! & 0x7ff00000) === 0) {
    f64[0] = x * pow2(64);
    adjust = -64;
  }
  const hi = i32[1]!;
  splitExponent.value = ((hi >>> 20) & 0x7ff) - 1023 + adjust;
  i32[1] = (hi & 0x800fffff) | (1023 << 20);
  return f64[0]!;
}
export const splitExponent = { value: 0 };
