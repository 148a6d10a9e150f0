/**
 * Error-free transformations on doubles: the exact error of a rounded sum or
 * product, as a second double. Results come back through `eftLow.value`
 * (the high part is the ordinary rounded result) so nothing is allocated.
 *
 * Limits: exact as long as nothing overflows; the product's error is exact
 * when it is not below the subnormal range (callers keep operands near 1).
 */

export const eftLow = { value: 0 };

/** Returns fl(a + b) and leaves a + b - fl(a + b) in eftLow (Knuth's TwoSum, any operand order). */
export function twoSum(a: number, b: number): number {
  const s = a + b;
  const bv = s - a;
  const av = s - bv;
  eftLow.value = a - av + (b - bv);
  return s;
}

const SPLITTER = 134217729; // 2^27 + 1

/** a × b - p exactly, for p = fl(a × b) (Dekker's product with Veltkamp splitting). */
export function productError(a: number, b: number, p: number): number {
  let t = SPLITTER * a;
  const ah = t - (t - a);
  const al = a - ah;
  t = SPLITTER * b;
  const bh = t - (t - b);
  const bl = b - bh;
  return al * bl - (p - ah * bh - al * bh - ah * bl);
}
