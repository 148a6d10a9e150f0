/**
 * The binary64 fused multiply-add, exact then rounded once.
 *
 * Theory of operation. x = mx·2^ex, y = my·2^ey, z = mz·2^ez with 53-bit
 * integer significands; the sum mx·my·2^(ex+ey) + mz·2^ez is formed exactly
 * as a BigInt over the smaller exponent (at most about 2200 bits). Its top 55
 * bits plus a sticky bit for everything below them become a double-double
 * (h, l) that represents a value in the same open interval between two
 * consecutive 55-bit numbers, which is all roundToFormat needs: it rounds to
 * at most 53 bits, so it can neither see a false tie nor miss a true one.
 * BigInt is confined to this module; the caller has settled NaNs,
 * infinities and zero products.
 */
import { splitExponent, splitMantissa } from './bits.js';
import { eftLow, twoSum } from './eft.js';
import { BINARY64, RM_RDN, roundToFormat } from './round.js';

const KEEP = 55;

let significandExp = 0;

/** Integer significand (signed) of a finite non-zero double; value = significand × 2^significandExp. */
function integerSignificand(x: number): bigint {
  const m = splitMantissa(x);
  significandExp = splitExponent.value - 52;
  return BigInt(m * 2 ** 52);
}

/** x × y + z for finite non-zero x, y and finite z, rounded once to binary64. */
export function fusedMultiplyAdd64(x: number, y: number, z: number, rm: number): number {
  let product = integerSignificand(x);
  let productExp = significandExp;
  product *= integerSignificand(y);
  productExp += significandExp;
  let sum: bigint;
  let exp: number;
  if (z === 0) {
    sum = product;
    exp = productExp;
  } else {
    const addend = integerSignificand(z);
    const addendExp = significandExp;
    exp = Math.min(productExp, addendExp);
    sum = (product << BigInt(productExp - exp)) + (addend << BigInt(addendExp - exp));
  }
  if (sum === 0n) return rm === RM_RDN ? -0 : 0;
  const negative = sum < 0n;
  const magnitude = negative ? -sum : sum;
  const shift = Math.max(0, magnitude.toString(2).length - KEEP);
  const top = magnitude >> BigInt(shift);
  const sticky = top << BigInt(shift) !== magnitude ? 0.25 : 0;
  const high = Number(top >> 2n) * 4;
  const low = Number(top & 3n) + sticky;
  const h = twoSum(high, low);
  const l = eftLow.value;
  return roundToFormat(negative ? -h : h, negative ? -l : l, exp + shift, BINARY64, rm);
}
