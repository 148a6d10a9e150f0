/**
 * The non-arithmetic FP operations: comparisons (feq/flt/fle), minimum and
 * maximum (fmin/fmax), and classification (fclass).
 *
 * Theory of operation. Operands are exact JS numbers (NaN for any NaN) plus,
 * where it matters, whether a NaN operand is signaling. feq is a quiet
 * comparison (NV only for a signaling NaN, raised by the executor); flt and
 * fle are signaling (NV for any NaN, raised here). fmin/fmax follow the
 * RISC-V 2.2 rules: −0 is less than +0, a single NaN operand yields the other
 * operand, two NaNs yield the canonical NaN (the caller writes it), and a
 * signaling NaN raises NV (executor).
 */
import { FLAG_NV, fpFlags, type FloatFormat } from './round.js';

export function fpEqual(x: number, y: number): number {
  return x === y ? 1 : 0;
}

export function fpLess(x: number, y: number): number {
  if (x !== x || y !== y) fpFlags.value |= FLAG_NV;
  return x < y ? 1 : 0;
}

export function fpLessOrEqual(x: number, y: number): number {
  if (x !== x || y !== y) fpFlags.value |= FLAG_NV;
  return x <= y ? 1 : 0;
}

export function fpMin(x: number, y: number): number {
  if (x !== x) return y;
  if (y !== y) return x;
  return Math.min(x, y);
}

export function fpMax(x: number, y: number): number {
  if (x !== x) return y;
  if (y !== y) return x;
  return Math.max(x, y);
}

/** fclass: a one-hot mask, bits 0..9 = −∞, −normal, −subnormal, −0, +0, +subnormal, +normal, +∞, sNaN, qNaN. */
export function fpClass(x: number, signaling: boolean, fmt: FloatFormat): number {
  if (x !== x) return signaling ? 1 << 8 : 1 << 9;
  const negative = x < 0 || Object.is(x, -0);
  const magnitude = Math.abs(x);
  let bit: number;
  if (magnitude === Infinity) bit = 0;
  else if (magnitude >= fmt.minNormal) bit = 1;
  else if (magnitude !== 0) bit = 2;
  else bit = 3;
  return 1 << (negative ? bit : 7 - bit);
}
