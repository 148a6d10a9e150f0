/**
 * Bit-level access to binary32 and binary64 values without BigInt.
 *
 * Theory of operation. One 8-byte scratch buffer is viewed as a Float64Array,
 * a Float32Array and an Int32Array (little-endian host: word 0 is the low
 * half of a double). Moving a pattern through it converts between a JS number
 * and its IEEE bits exactly. NaN payloads never travel through JS numbers: the
 * FPU classifies NaNs from the bits and only ever produces canonical NaNs, so
 * a NaN number here just means "some NaN".
 */

const scratch = new ArrayBuffer(8);
const f64 = new Float64Array(scratch);
const f32 = new Float32Array(scratch);
const i32 = new Int32Array(scratch);

/** The double whose bits are (hi, lo). */
export function doubleFromBits(lo: number, hi: number): number {
  i32[0] = lo;
  i32[1] = hi;
  return f64[0]!;
}

/** The single whose bits are `bits`, as a (exactly representable) double. */
export function singleFromBits(bits: number): number {
  i32[0] = bits;
  return f32[0]!;
}

/** Low 32 bits of a double's pattern. */
export function lowBits(x: number): number {
  f64[0] = x;
  return i32[0]!;
}

/** High 32 bits of a double's pattern. */
export function highBits(x: number): number {
  f64[0] = x;
  return i32[1]!;
}

/** Bits of a single-precision value (x must be representable in binary32, or NaN). */
export function singleBits(x: number): number {
  f32[0] = x;
  return i32[0]!;
}

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
