/**
 * Output in qemu-img's shapes, shared by every `img` command.
 *
 * - sizeToStr: qemu's human-readable sizes ("1 GiB", "196 KiB", "1.5 MiB", "0 B"):
 *   the unit is the power of 1024 that keeps the number below 1000, printed with
 *   three significant digits in C's %g style (trailing zeros dropped).
 * - toQemuJson: JSON as qemu-img prints QAPI results: 4-space indentation,
 *   "key": value, non-ASCII escaped as \uXXXX. qemu-img keeps objects in a hash
 *   dictionary (QDict: 512 buckets, tdb hash, newest entry first in a bucket) and
 *   prints them in bucket order, so the key order here is computed the same way
 *   from the order the caller inserted the keys (the QAPI field order).
 * - dumpQObject: the human "Format specific information:" dump: the same dictionary
 *   order, dashes in keys shown as spaces, nested values indented by 4.
 * - formatSnapshotTable: the "ID TAG VM SIZE DATE VM CLOCK ICOUNT" table of
 *   `img info` and `img snapshot -l`, dates in local time.
 */
import type { SnapshotInfo } from '../block/formats/format.js';

const SIZE_UNITS = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];

/** qemu's size_to_str: "1 GiB", "324 KiB", "1.5 MiB", "0 B". */
export function sizeToStr(bytes: number): string {
  // The unit switches up once the number would reach 1000 (not 1024).
  let unit = 0;
  while (unit < SIZE_UNITS.length - 1 && bytes / (1000 / 1024) >= 2 ** (10 * (unit + 1))) unit++;
  return `${formatG(bytes / 2 ** (10 * unit), 3)} ${SIZE_UNITS[unit]}B`;
}

/** C's "%.<precision>g" for a non-negative finite number. */
export function formatG(value: number, precision: number): string {
  if (value === 0) return '0';
  let exp = Math.floor(Math.log10(value));
  // Rounding to `precision` digits may carry into the next power of ten.
  if (Number(value.toPrecision(precision)) >= 10 ** (exp + 1)) exp++;
  if (exp < -4 || exp >= precision) {
    const [mant, e] = value.toExponential(precision - 1).split('e') as [string, string];
    const n = Number(e);
    const digits = String(Math.abs(n)).padStart(2, '0');
    return `${stripZeros(mant)}e${n < 0 ? '-' : '+'}${digits}`;
  }
  return stripZeros(value.toFixed(Math.max(0, precision - 1 - exp)));
}

function stripZeros(text: string): string {
  return text.includes('.') ? text.replace(/\.?0+$/, '') : text;
}

/** QDict's bucket for a key: tdb_hash(key) % 512. */
export function qdictBucket(key: string): number {
  const bytes = new TextEncoder().encode(key);
  let value = Math.imul(0x238f13af, bytes.length) >>> 0;
  for (let i = 0; i < bytes.length; i++) {
    value = (value + ((bytes[i]! << ((i * 5) % 24)) >>> 0)) >>> 0;
  }
  return ((Math.imul(1103515243, value) + 12345) >>> 0) % 512;
}

/** The keys of `obj` (undefined values left out) in the order qemu-img prints a QDict. */
export function qdictKeys(obj: Record<string, unknown>): string[] {
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined);
  const inserted = new Map(keys.map((k, i) => [k, i]));
  return keys.sort((a, b) => qdictBucket(a) - qdictBucket(b) || inserted.get(b)! - inserted.get(a)!);
}

/** A JSON value as qemu-img prints it: pretty (4-space indent), QDict key order. */
export function toQemuJson(value: unknown): string {
  return writeJson(value, 0);
}

function writeJson(value: unknown, depth: number): string {
  const pad = (d: number) => `\n${' '.repeat(d * 4)}`;
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`cannot print ${value} as JSON`);
    return Number.isInteger(value) ? value.toFixed(0) : String(value);
  }
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'string') return quoteJson(value);
  if (Array.isArray(value)) {
    const items = value.map((v) => pad(depth + 1) + writeJson(v, depth + 1));
    return `[${items.join(',')}${pad(depth)}]`;
  }
  if (typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const items = qdictKeys(obj).map((k) => `${pad(depth + 1)}${quoteJson(k)}: ${writeJson(obj[k], depth + 1)}`);
    return `{${items.join(',')}${pad(depth)}}`;
  }
  throw new Error(`cannot print a ${typeof value} as JSON`);
}

const JSON_ESCAPES: Record<string, string> = {
  '"': '\\"', '\\': '\\\\', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t',
};

function quoteJson(text: string): string {
  let out = '"';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (JSON_ESCAPES[ch]) out += JSON_ESCAPES[ch];
    else if (cp >= 0x20 && cp < 0x7f) out += ch;
    else if (cp > 0xffff) {
      const v = cp - 0x10000;
      out += `\\u${hex4(0xd800 + (v >> 10))}\\u${hex4(0xdc00 + (v & 0x3ff))}`;
    } else out += `\\u${hex4(cp)}`;
  }
  return `${out}"`;
}

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}

/** qemu-img's human dump of a QAPI object (format-specific information). */
export function dumpQObject(value: unknown, indent: number): string {
  let out = '';
  const line = (label: string, v: unknown) => {
    const composite = typeof v === 'object' && v !== null;
    out += `${' '.repeat(indent * 4)}${label}:${composite ? '\n' : ' '}`;
    out += composite ? dumpQObject(v, indent + 1) : `${scalarText(v)}\n`;
  };
  if (Array.isArray(value)) value.forEach((v, i) => line(`[${i}]`, v));
  else if (typeof value === 'object' && value !== null) {
    const obj = value as Record<string, unknown>;
    for (const k of qdictKeys(obj)) line(k.replace(/-/g, ' '), obj[k]);
  } else out += `${scalarText(value)}\n`;
  return out;
}

function scalarText(v: unknown): string {
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  return String(v);
}

/** The snapshot table of `img info` / `img snapshot -l`, one line per snapshot, with the header line. */
export function formatSnapshotTable(snapshots: readonly SnapshotInfo[]): string {
  const header =
    `${'ID'.padEnd(10)}${'TAG'.padEnd(17)}${'VM SIZE'.padStart(8)}${'DATE'.padStart(20)}` +
    `${'VM CLOCK'.padStart(13)}${'ICOUNT'.padStart(11)}`;
  const rows = snapshots.map((s) => {
    const nsec = s['vm-clock-sec'] * 1e9 + s['vm-clock-nsec'];
    const secs = Math.floor(nsec / 1e9);
    const clock =
      `${two(Math.floor(secs / 3600))}:${two(Math.floor(secs / 60) % 60)}:${two(secs % 60)}.` +
      String(Math.floor(nsec / 1e6) % 1000).padStart(3, '0');
    return (
      `${s.id.padEnd(9)} ${s.name.padEnd(16)} ${sizeToStr(s['vm-state-size']).padStart(8)}` +
      `${localDate(s['date-sec']).padStart(20)}${clock.padStart(13)}${(s.icount === undefined ? '' : String(s.icount)).padStart(11)}`
    );
  });
  return [header, ...rows].map((l) => `${l}\n`).join('');
}

function two(n: number): string {
  return String(n).padStart(2, '0');
}

/** "%Y-%m-%d %H:%M:%S" in local time. */
function localDate(sec: number): string {
  const d = new Date(sec * 1000);
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

export type OutputFormat = 'human' | 'json';

/** qemu-img's --output argument. */
export function parseOutputFormat(value: string | undefined): OutputFormat {
  if (value === undefined || value === 'human') return 'human';
  if (value === 'json') return 'json';
  throw new Error('--output must be used with human or json as argument.');
}
