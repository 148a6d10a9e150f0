/**
 * Validation of the option values the copy commands (convert, commit, rebase,
 * dd) share with qemu-img: cache modes (-t/-T), the sparse size (-S), the rate
 * limit (-r) and the number of requests in flight (-m). Each parser returns the
 * value in the unit the copy engine takes or throws qemu-img's message.
 */
import { parseSize } from '../options.js';

const CACHE_MODES = ['none', 'writeback', 'unsafe', 'directsync', 'writethrough'] as const;
export type CacheMode = (typeof CACHE_MODES)[number];

/** `-t` (what = 'cache') or `-T` (what = 'source cache'). */
export function parseCacheMode(text: string | undefined, what: 'cache' | 'source cache', fallback: CacheMode): CacheMode {
  if (text === undefined) return fallback;
  if (!(CACHE_MODES as readonly string[]).includes(text)) throw new Error(`Invalid ${what} option: ${text}`);
  return text as CacheMode;
}

/** `-S`: bytes, a multiple of 512 (0 disables zero detection). */
export function parseSparseSize(text: string | undefined): number {
  if (text === undefined) return 4096;
  let n: number;
  try {
    n = parseSize(text, 'sparse size');
  } catch {
    n = -1;
  }
  if (n < 0 || n % 512 !== 0 || n / 512 > 2 ** 31 - 1) {
    throw new Error(
      'Invalid buffer size for sparse output specified. You may use k, M, G, T, P or E suffixes for\n' +
        'kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.',
    );
  }
  return n;
}

/** `-r`: bytes per second (0 or absent: unlimited). */
export function parseRateLimit(text: string | undefined): number {
  if (text === undefined) return 0;
  try {
    return parseSize(text, 'rate limit');
  } catch {
    throw new Error(`Invalid rate limit specified: '${text}'`);
  }
}

/** `-m`: 1..16 requests in flight (default 8). */
export function parseCoroutines(text: string | undefined): number {
  if (text === undefined) return 8;
  const n = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 16)) {
    throw new Error('Invalid number of coroutines. Allowed number of coroutines is between 1 and 16');
  }
  return n;
}
