/**
 * Operand generators for the FPU differential test: random and edge-case
 * binary32/binary64 patterns and integers, biased towards the places where
 * FP implementations go wrong (zeros, subnormals, the normal/subnormal and
 * overflow boundaries, infinities, quiet and signaling NaNs, halfway cases,
 * cancellation, fused products that cancel against the addend, integer
 * conversion limits). Deterministic: a seeded xorshift generator.
 *
 * A case is a mnemonic, a rounding mode and three 64-bit operands as
 * (lo, hi) int32 halves: f-register contents (singles NaN-boxed, except a few
 * deliberately unboxed ones) or, for conversions from integers and fmv.*.x,
 * an integer register value in the first operand.
 */

export interface FpCase {
  mnemonic: string;
  rm: number;
  /** lo, hi of operands a, b, c. */
  ops: Int32Array;
}

export class Random {
  private s0: number;
  private s1: number;
  constructor(seed: number) {
    this.s0 = seed | 1;
    this.s1 = (seed * 2654435761) | 7;
  }
  u32(): number {
    let x = this.s0;
    const y = this.s1;
    this.s0 = y;
    x ^= x << 23;
    x ^= x >>> 17;
    x ^= y ^ (y >>> 26);
    this.s1 = x;
    return (x + y) >>> 0;
  }
  below(n: number): number {
    return this.u32() % n;
  }
  chance(percent: number): boolean {
    return this.below(100) < percent;
  }
}

const scratch = new DataView(new ArrayBuffer(8));

function doubleBits(x: number): [number, number] {
  scratch.setFloat64(0, x, true);
  return [scratch.getInt32(0, true), scratch.getInt32(4, true)];
}

function doubleOf(lo: number, hi: number): number {
  scratch.setInt32(0, lo, true);
  scratch.setInt32(4, hi, true);
  return scratch.getFloat64(0, true);
}

function singleBits(x: number): number {
  scratch.setFloat32(0, x, true);
  return scratch.getInt32(0, true);
}

function singleOf(bits: number): number {
  scratch.setInt32(0, bits, true);
  return scratch.getFloat32(0, true);
}

interface Format {
  expBits: number;
  fracBits: number;
}
const S: Format = { expBits: 8, fracBits: 23 };
const D: Format = { expBits: 11, fracBits: 52 };

/** A fraction field pattern (as lo/hi of up to 52 bits): random, sparse, dense, or a simple one. */
function fraction(r: Random, f: Format): [number, number] {
  let lo: number;
  let hi: number;
  switch (r.below(8)) {
    case 0:
      lo = r.u32() & r.u32() & r.u32();
      hi = r.u32() & r.u32() & r.u32();
      break;
    case 1:
      lo = r.u32() | r.u32() | r.u32();
      hi = r.u32() | r.u32() | r.u32();
      break;
    case 2:
      lo = hi = 0;
      break;
    case 3:
      lo = -1;
      hi = -1;
      break;
    case 4:
      lo = r.below(8);
      hi = 0;
      break;
    case 5:
      lo = r.chance(50) ? 1 << r.below(32) : 0;
      hi = r.chance(50) ? 1 << r.below(20) : 0;
      break;
    default:
      lo = r.u32();
      hi = r.u32();
  }
  if (f === S) return [lo & 0x7fffff, 0];
  return [lo | 0, hi & 0xfffff];
}

/** An exponent field: anywhere, near the middle, or at the edges. */
function exponentField(r: Random, f: Format): number {
  const max = (1 << f.expBits) - 1;
  const bias = max >> 1;
  switch (r.below(6)) {
    case 0:
      return r.below(max + 1);
    case 1:
      return r.below(4);
    case 2:
      return max - r.below(4);
    case 3:
      return bias + r.below(70) - 35;
    default:
      return bias + r.below(9) - 4;
  }
}

function compose(f: Format, sign: number, exp: number, frac: [number, number]): [number, number] {
  if (f === S) return [(sign << 31) | (exp << 23) | frac[0], -1];
  return [frac[0], (sign << 31) | (exp << 20) | frac[1]];
}

const SPECIAL_D: number[] = [0, 1, 0.5, 1.5, 2, 3, 2 ** 24, 2 ** 31, 2 ** 32, 2 ** 52, 2 ** 53, 2 ** 63, 2 ** 64, 2 ** 31 - 0.5, 2 ** 31 + 0.5, 2 ** 32 - 0.5, 2 ** 63 - 1024, 2 ** 64 - 2048, Number.MIN_VALUE, 2 ** -1022, 2 ** -1022 - Number.MIN_VALUE, Number.MAX_VALUE, Infinity, 2 ** -126, 2 ** -149, 2 ** -150, 2 ** 128, 3.4028234663852886e38, 2.5, 0.49999999999999994, 1 - 2 ** -53];

/** A special value of either format as its pattern. */
function special(r: Random, f: Format): [number, number] {
  const sign = r.below(2);
  switch (r.below(6)) {
    case 0: // quiet NaN, maybe with payload
      return f === S ? [(sign << 31) | 0x7fc00000 | (r.chance(50) ? r.u32() & 0x3fffff : 0), -1] : [r.chance(50) ? r.u32() : 0, (sign << 31) | 0x7ff80000];
    case 1: // signaling NaN
      return f === S ? [(sign << 31) | 0x7f800000 | (1 + (r.u32() & 0x3ffffe)), -1] : [1 + r.below(1000), (sign << 31) | 0x7ff00000];
    default: {
      const v = SPECIAL_D[r.below(SPECIAL_D.length)]! * (sign ? -1 : 1);
      if (f === S) return [singleBits(v), -1];
      return doubleBits(v);
    }
  }
}

/** A random operand pattern of format f. */
export function operand(r: Random, f: Format): [number, number] {
  if (r.chance(15)) return special(r, f);
  return compose(f, r.below(2), exponentField(r, f), fraction(r, f));
}

function valueOf(f: Format, p: [number, number]): number {
  return f === S ? singleOf(p[0]) : doubleOf(p[0], p[1]);
}

function patternOf(f: Format, v: number): [number, number] {
  return f === S ? [singleBits(v), -1] : doubleBits(v);
}

/** The pattern of value v moved by k units in the last place (towards larger magnitude for k > 0). */
function nudge(f: Format, p: [number, number], k: number): [number, number] {
  if (f === S) return [(p[0] + k) | 0, -1];
  const lo = (p[0] >>> 0) + k;
  const carry = lo >= 2 ** 32 ? 1 : lo < 0 ? -1 : 0;
  return [lo | 0, (p[1] + carry) | 0];
}

/** A second operand related to a: near it, near its negation, or on another exponent near it. */
function related(r: Random, f: Format, a: [number, number]): [number, number] {
  const signFlip = r.below(2) << 31;
  const flip = (p: [number, number]): [number, number] => (f === S ? [p[0] ^ signFlip, -1] : [p[0], p[1] ^ signFlip]);
  switch (r.below(3)) {
    case 0:
      return flip(nudge(f, a, r.below(9) - 4));
    case 1: {
      // Same sign/fraction neighbourhood, exponent shifted by up to precision + 3: rounding-position cases.
      const shift = r.below(f === S ? 28 : 57);
      const frac = fraction(r, f);
      const expA = f === S ? (a[0] >>> 23) & 0xff : (a[1] >>> 20) & 0x7ff;
      return flip(compose(f, 0, Math.max(0, expA - shift), frac));
    }
    default: {
      // Exponent chosen so a product or quotient lands near overflow or the subnormal range.
      const max = (1 << f.expBits) - 1;
      const bias = max >> 1;
      const expA = f === S ? (a[0] >>> 23) & 0xff : (a[1] >>> 20) & 0x7ff;
      const target = r.chance(50) ? max - 1 + r.below(5) - 2 : r.below(f === S ? 30 : 60) - (f === S ? 24 : 53) + 1;
      const forProduct = r.chance(50);
      const e = forProduct ? target - expA + bias : expA - target + bias;
      return flip(compose(f, 0, Math.min(max - 1, Math.max(0, e)), fraction(r, f)));
    }
  }
}

/** An integer register value: small, near a power of two (with random low bits), extreme, or random. */
function integer(r: Random): [number, number] {
  switch (r.below(5)) {
    case 0: {
      const v = r.below(2000) - 1000;
      return [v, v < 0 ? -1 : 0];
    }
    case 1: {
      const bit = r.below(64);
      const low = r.u32() & ((1 << r.below(32)) - 1);
      const sign = r.chance(30) ? -1 : 0;
      const lo = bit < 32 ? (1 << bit) | low : low;
      const hi = bit >= 32 ? 1 << (bit - 32) : 0;
      return sign ? [~lo, ~hi] : [lo | 0, hi | 0];
    }
    case 2:
      return [[0, 0x80000000], [-1, 0x7fffffff], [-1, -1], [0x7fffffff, 0], [0x80000000 | 0, -1], [-1, 0], [0, 1]][r.below(7)]!.map((v) => v | 0) as [number, number];
    default:
      return [r.u32() | 0, r.u32() | 0];
  }
}

/** Occasionally a single that is not NaN-boxed (must read as the canonical NaN). */
function maybeUnbox(r: Random, f: Format, p: [number, number]): [number, number] {
  return f === S && r.chance(2) ? [p[0], r.u32() & 0x7fffffff] : p;
}

/** Operand shapes by mnemonic: 'f' (f register in the instruction's source format) or 'x' (integer register). */
function shape(mnemonic: string): { f: Format; sources: string } {
  const parts = mnemonic.split('.');
  const stem = parts[0]!;
  if (mnemonic === 'fcvt.s.d') return { f: D, sources: 'f' };
  if (mnemonic === 'fcvt.d.s') return { f: S, sources: 'f' };
  if (stem === 'fmv') return parts[1] === 'x' ? { f: parts[2] === 'd' ? D : S, sources: 'f' } : { f: S, sources: 'x' };
  if (stem === 'fcvt' && (parts[2] === 'w' || parts[2] === 'wu' || parts[2] === 'l' || parts[2] === 'lu')) return { f: S, sources: 'x' };
  const f = parts[parts.length - 1] === 'd' ? D : S;
  if (/^fn?m(add|sub)$/.test(stem)) return { f, sources: 'fff' };
  if (stem === 'fsqrt' || stem === 'fclass' || stem === 'fcvt') return { f, sources: stem === 'fsqrt' ? 'root' : 'f' };
  return { f, sources: 'ff' };
}

export function makeCases(mnemonic: string, count: number, r: Random): FpCase[] {
  const { f, sources } = shape(mnemonic);
  const cases: FpCase[] = [];
  for (let i = 0; i < count; i++) {
    const ops = new Int32Array(6);
    if (sources === 'x') {
      const v = integer(r);
      ops[0] = v[0];
      ops[1] = v[1];
    } else {
      let a = operand(r, f);
      // Square roots: mostly of non-negative operands, or NV would dominate.
      if (sources === 'root' && r.chance(80)) a = f === S ? [a[0] & 0x7fffffff, a[1]] : [a[0], a[1] & 0x7fffffff];
      const b = r.chance(50) ? related(r, f, a) : operand(r, f);
      let c = operand(r, f);
      if (sources === 'fff' && r.chance(50)) {
        // An addend that (nearly) cancels the product.
        const product = valueOf(f, a) * valueOf(f, b);
        if (Number.isFinite(product) && product === product) c = nudge(f, patternOf(f, f === S ? -Math.fround(product) : -product), r.below(5) - 2);
      }
      const all = [maybeUnbox(r, f, a), maybeUnbox(r, f, b), maybeUnbox(r, f, c)];
      all.forEach((p, k) => {
        ops[2 * k] = p[0];
        ops[2 * k + 1] = p[1];
      });
    }
    cases.push({ mnemonic, rm: r.below(5), ops });
  }
  return cases;
}

/**
 * Hand-picked cases, run in every rounding mode: products just below the
 * smallest normal number that do or do not round up to it (tininess after
 * rounding decides UF), halfway cases, and integer-conversion limits.
 */
const EDGE_CASES: readonly [string, string, string, string][] = [
  // 2^-1022 × (1 - 2^-104): tiny before rounding, not after (RNE/RUP/RMM round up to 2^-1022).
  ['fmul.d', '3feffffffffffffe', '0010000000000001', '0'],
  // 2^-1022 - 2^-1075: tiny after rounding too (exact in 53 bits), halfway in the subnormal grid.
  ['fmul.d', '3fefffffffffffff', '0010000000000000', '0'],
  ['fmadd.d', '3feffffffffffffe', '0010000000000001', '8000000000000000'],
  ['fmul.s', 'ffffffff3f7ffffe', 'ffffffff00800001', '0'],
  ['fmul.s', 'ffffffff3f7fffff', 'ffffffff00800000', '0'],
  ['fmadd.s', 'ffffffff3f7ffffe', 'ffffffff00800001', 'ffffffff80000000'],
  ['fdiv.d', '0010000000000000', '3ff0000000000001', '0'],
  ['fdiv.s', 'ffffffff00800000', 'ffffffff3f800001', '0'],
  ['fcvt.s.d', '380fffffffffffff', '0', '0'],
  ['fcvt.s.d', '380ffffff0000000', '0', '0'],
  ['fcvt.s.d', '47efffffefffffff', '0', '0'],
  ['fcvt.s.d', '47effffff0000000', '0', '0'],
  ['fadd.d', '7fefffffffffffff', '7c9fffffffffffff', '0'],
  ['fadd.d', '7fefffffffffffff', '7ca0000000000000', '0'],
  ['fcvt.w.d', '41dfffffffe00000', '0', '0'],
  ['fcvt.w.d', 'c1e0000000100000', '0', '0'],
  ['fcvt.wu.d', 'bfe0000000000000', '0', '0'],
  ['fcvt.wu.d', 'bff0000000000000', '0', '0'],
  ['fcvt.l.d', '43e0000000000000', '0', '0'],
  ['fcvt.lu.d', '43efffffffffffff', '0', '0'],
  ['fcvt.l.s', 'ffffffffdf000000', '0', '0'],
  ['fsqrt.d', '0000000000000001', '0', '0'],
  ['fsqrt.s', 'ffffffff00000001', '0', '0'],
];

function halves(hex: string): [number, number] {
  const padded = hex.padStart(16, '0');
  return [parseInt(padded.slice(8), 16) | 0, parseInt(padded.slice(0, 8), 16) | 0];
}

export function edgeCases(): FpCase[] {
  return EDGE_CASES.flatMap(([mnemonic, a, b, c]) =>
    [0, 1, 2, 3, 4].map((rm) => ({ mnemonic, rm, ops: Int32Array.from([...halves(a), ...halves(b), ...halves(c)]) })),
  );
}
