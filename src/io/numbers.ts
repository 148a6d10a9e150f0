/**
 * How qemu-io reads and prints numbers, so tsemu io's output matches it line for line:
 * - cvtnum: offsets and lengths with suffixes (k/K = KiB … e = EiB, "1.5k", "0x10"),
 *   errors worded like qemu-io's ("Parsing error: non-numeric argument, or
 *   extraneous/unrecognized suffix -- abc");
 * - cvtstr: a byte count for humans: "512 bytes", "64 KiB", "1.438 MiB" (bytes with
 *   six decimals, larger units with three, a ".000…" tail dropped), rounding ties to
 *   even as C's printf does;
 * - timestr: an elapsed time as "SS.CC" ("M:SS.CC", "H:MM:SS.CC" when longer), or
 *   always "H:MM:SS.CC" in the -C machine format.
 */
import { parseSize } from '../block/options.js';

export class IoParseError extends Error {}

/** Parses a size argument; throws IoParseError with qemu-io's message. */
export function cvtnum(text: string): number {
  try {
    return parseSize(text);
  } catch {
    throw new IoParseError(`Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- ${text}`);
  }
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
