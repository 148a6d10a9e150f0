/**
 * How qemu-io reads and prints numbers, so tsemu io's output matches it line for line:
 * - cvtnum: offsets and lengths with suffixes (k/K = KiB … e = EiB, "1.5k", "0x10"),
 *   errors worded like qemu-io's ("Parsing error: non-numeric argument, or
 *   extraneous/unrecognized suffix -- abc", "Parsing error: argument too large -- 8E");
 * - cvtstr: a byte count for humans: "512 bytes", "64 KiB", "1.438 MiB" (bytes with
 *   six decimals, larger units with three, a ".000…" tail dropped), rounding ties to
 *   even as C's printf does;
 * - timestr: an elapsed time as "SS.CC" ("M:SS.CC", "H:MM:SS.CC" when longer), or
 *   always "H:MM:SS.CC" in the -C machine format.
 */
export class IoParseError extends Error {}

const MULTIPLIERS: Record<string, number> = {
  b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50, e: 2 ** 60,
};

/**
 * Parses a size argument as QEMU's qemu_strtosz does (a fraction needs a suffix and
 * is truncated to whole bytes); values of 2^63 and more are "too large". Numbers
 * beyond 2^53 come back inexact, which only matters to requests that then fail their
 * range check anyway. Throws IoParseError with qemu-io's message.
 */
export function cvtnum(text: string): number {
  const m = /^(0x[0-9a-f]+|[0-9]+(?:\.[0-9]+)?)([bkmgtpe]?)$/i.exec(text);
  if (!m || (m[1]!.includes('.') && m[2] === '')) {
    throw new IoParseError(`Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- ${text}`);
  }
  const hex = /^0x/i.test(m[1]!);
  const bytes = Math.floor((hex ? parseInt(m[1]!, 16) : Number(m[1])) * MULTIPLIERS[(m[2] || 'b').toLowerCase()]!);
  if (bytes >= 2 ** 63) throw new IoParseError(`Parsing error: argument too large -- ${text}`);
  return bytes;
}

/** printf("%.<digits>f") with C's round-half-to-even on exact ties. */
export function formatFixed(value: number, digits: number): string {
  // toFixed sees the double's exact value; 60 more digits hold every fraction these sizes have.
  const exact = value.toFixed(Math.min(100, digits + 60));
  const cut = exact.indexOf('.') + 1 + digits;
  if (/^50*$/.test(exact.slice(cut))) {
    const truncated = exact.slice(0, digits === 0 ? cut - 1 : cut);
    const lastDigit = Number(truncated[truncated.length - 1]);
    return lastDigit % 2 === 0 ? truncated : (Number(truncated) + 10 ** -digits).toFixed(digits);
  }
  return value.toFixed(digits);
}

const UNITS: ReadonlyArray<readonly [number, string]> = [
  [2 ** 60, ' EiB'],
  [2 ** 50, ' PiB'],
  [2 ** 40, ' TiB'],
  [2 ** 30, ' GiB'],
  [2 ** 20, ' MiB'],
  [2 ** 10, ' KiB'],
];

export function cvtstr(value: number): string {
  const unit = UNITS.find(([size]) => value >= size);
  const text = unit ? formatFixed(value / unit[0], 3) : formatFixed(value, 6);
  const suffix = unit ? unit[1] : ' bytes';
  const trim = text.indexOf('.000');
  return (trim >= 0 ? text.slice(0, trim) : text) + suffix;
}

const pad2 = (n: number): string => String(n).padStart(2, '0');

/** Elapsed seconds as qemu-io prints them; `fixed` is the -C format. */
export function timestr(seconds: number, fixed: boolean): string {
  const centis = Math.floor(seconds * 100) % 100;
  const whole = Math.floor(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = whole % 60;
  if (fixed) return `${h}:${pad2(m)}:${pad2(s)}.${pad2(centis)}`;
  if (h > 0) return `${h}:${pad2(m)}:${pad2(s)}.${pad2(centis)}`;
  if (m > 0) return `${pad2(m)}:${pad2(s)}.${pad2(centis)}`;
  return `${pad2(s)}.${pad2(centis)}`;
}
