/**
 * Deterministic test data: a small seeded PRNG (mulberry32) for choosing
 * offsets, sizes and kill points, and per-write byte patterns that depend only
 * on (seed, seq), so a parent process can recompute exactly what a child wrote.
 * Also file hashing, used to prove that a command left its inputs untouched.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [lo, hi] (both inclusive). */
  int(lo: number, hi: number): number;
  /** True with probability p. */
  chance(p: number): boolean;
}

export function makeRng(seed: number): Rng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    chance: (p) => next() < p,
  };
}

/** `length` bytes that depend only on (seed, seq): never all zero, different per write. */
export function patternBytes(seed: number, seq: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (Math.imul(seed, 0x9e3779b1) ^ Math.imul(seq + 1, 0x85ebca6b)) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    // xorshift32, one step per byte; OR 1 keeps every byte distinct from a zero fill.
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = (x & 0xfe) | 1;
  }
  return out;
}

export async function sha256File(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex');
}

