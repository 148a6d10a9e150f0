/**
 * The binary64 fused multiply-add, exact then rounded once.
 *
 * Theory of operation. The fast path stays in doubles: when the operands are
 * far from overflow and underflow, the product is an exact double-double
 * (TwoProduct) and TwoSum steps add the addend; if the three-term sum
 * collapses exactly into a double-double (checked, not assumed), that is the
 * exact result. Otherwise the slow path: x = mx·2^ex, y = my·2^ey, z = mz·2^ez with 53-bit
 * integer significands; the sum mx·my·2^(ex+ey) + mz·2^ez is formed exactly
 * as a BigInt over the smaller exponent (at most about 2200 bits). Its top 55
 * bits plus a sticky bit for everything below them become a double-double
 * (h, l) that represents a value in the same open interval between two
 * consecutive 55-bit numbers, which is all roundToFormat needs: it rounds to
 * at most 53 bits, so it can neither see a false tie nor miss a true one.
 * BigInt is confined to this module; the caller has settled NaNs,
 * infinities and zero products.
 */
import { pow2, splitExponent, splitMantissa } from './bits.js';
import { eftLow, productError, twoSum } from './eft.js';
import { BINARY64, RM_RDN, roundToFormat } from './round.js';

const KEEP = 55;

let significandExp = 0;

/** Integer significand (signed) of a finite non-zero double; value = significand × 2^significandExp. */
function integerSignificand(x: number): bigint {
  const m = splitMantissa(x);
  significandExp = splitExponent.value - 52;
  return BigInt(m * 2 ** 52);
}

const SAFE_HIGH = pow2(450);
const SAFE_LOW = pow2(-450);

/** x × y + z for finite non-zero x, y and finite z, rounded once to binary64. */
export function fusedMultiplyAdd64(x: number, y: number, z: number, rm: number): number {
  const ax = Math.abs(x);
  const ay = Math.abs(y);
  const az = Math.abs(z);
  if (ax < SAFE_HIGH && ax > SAFE_LOW && ay < SAFE_HIGH && ay > SAFE_LOW && (z === 0 || (az < SAFE_HIGH && az > SAFE_LOW))) {
    const ph = x * y;
    const pl = productError(x, y, ph);
    if (z === 0) return roundToFormat(ph, pl, 0, BINARY64, rm);
    // ph + pl + z = s1 + t1 + pl = s1 + s2 + t2 = h + l + t2.
    const s1 = twoSum(ph, z);
    const t1 = eftLow.value;
    const s2 = twoSum(t1, pl);
    const t2 = eftLow.value;
    let h = twoSum(s1, s2);
    let l = eftLow.value;
    if (t2 !== 0) {
      const u = twoSum(l, t2);
      if (eftLow.value === 0) {
        h = twoSum(h, u);
        l = eftLow.value;
      } else {
        return exactFusedMultiplyAdd(x, y, z, rm);
      }
    }
    if (h === 0) return rm === RM_RDN ? -0 : 0;
    return roundToFormat(h, l, 0, BINARY64, rm);
  }
  return exactFusedMultiplyAdd(x, y, z, rm);
}

/** The BigInt path: exact for any finite operands. */
function exactFusedMultiplyAdd(x: number, y: number, z: number, rm: number): number {
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
