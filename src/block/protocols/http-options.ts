/**
 * The options of the http and https protocol drivers, with QEMU's curl driver
 * names and defaults: url, readahead (default 256 KiB, a multiple of 512, 0 for
 * none), timeout (seconds, default 5, at most 10000, 0 for none: QEMU limits a
 * whole transfer, tsemu how long a transfer may make no progress, so that big
 * reads on slow links and requests queued for a connection do not fail),
 * sslverify (on/off, default on), cookie or cookie-secret, username and
 * password-secret (HTTP basic authentication; the secrets come from the secret
 * store, see block/secrets.ts). A plain `https://…` name takes the defaults, and
 * `user:password@` in it is basic authentication, as curl takes it. A
 * protocol-level `json:{"driver":"https","url":…}` name carries the rest; an
 * option the driver does not know, a driver that does not match the URL's scheme,
 * or a bad value is an error naming it.
 *
 * httpDisplayName() is how qemu-img names an image on such a name: the plain URL
 * when only url, readahead, timeout or sslverify=on are given, else the options
 * it keeps in the order it prints them (its option dictionary's order, measured
 * with qemu-img 7.2).
 */
import { type JsonOptionValue, isJsonFilename, jsonDriverOf, parseJsonOptions, stringOption } from '../json-options.js';
import { parseSize } from '../options.js';
import { lookupSecret } from '../secrets.js';

export type HttpDriverName = 'http' | 'https';

export interface HttpOptions {
  driver: HttpDriverName;
  url: URL;
  readahead: number;
  /** How long a transfer may go without progress, in milliseconds; 0 for ever. */
  timeoutMs: number;
  sslverify: boolean;
  cookie?: string;
  username?: string;
  password?: string;
}

const DRIVERS: readonly string[] = ['http', 'https'];
const DEFAULT_READAHEAD = 256 * 1024;
const DEFAULT_TIMEOUT = 5;
const MAX_TIMEOUT = 10000;
const KNOWN = new Set([
  'driver', 'url', 'filename', 'readahead', 'timeout', 'sslverify', 'cookie', 'cookie-secret', 'username', 'password-secret',
]);

/** The driver a name belongs to ("http", "https"), or null when it is not an HTTP(S) name. */
export function httpDriverOf(name: string): HttpDriverName | null {
  if (isJsonFilename(name)) {
    const driver = jsonDriverOf(name);
    return driver !== undefined && DRIVERS.includes(driver) ? (driver as HttpDriverName) : null;
  }
  const scheme = /^([a-z]+):\/\//i.exec(name)?.[1]?.toLowerCase();
  return scheme !== undefined && DRIVERS.includes(scheme) ? (scheme as HttpDriverName) : null;
}

export function parseHttpOptions(name: string): HttpOptions {
  const driver = httpDriverOf(name);
  if (!driver) throw new Error(`'${name}' is not an http or https URL`);
  const opts = isJsonFilename(name) ? parseJsonOptions(name) : new Map<string, JsonOptionValue>([['url', name]]);
  for (const key of opts.keys()) {
    if (!KNOWN.has(key)) throw new Error(`Block protocol '${driver}' doesn't support the option '${key}'`);
  }
  const url = parseUrl(driver, stringOption(opts, 'url') ?? stringOption(opts, 'filename'));
  const out: HttpOptions = {
    driver,
    url,
    readahead: readaheadOption(opts.get('readahead')),
    timeoutMs: timeoutOption(opts.get('timeout')) * 1000,
    sslverify: boolOption(opts.get('sslverify'), 'sslverify', true),
  };
  const cookie = stringOption(opts, 'cookie');
  const cookieSecret = stringOption(opts, 'cookie-secret');
  if (cookie !== undefined && cookieSecret !== undefined) throw new Error('cookie and cookie-secret cannot both be given');
  if (cookie !== undefined || cookieSecret !== undefined) out.cookie = cookie ?? lookupSecret(cookieSecret!);
  const passwordSecret = stringOption(opts, 'password-secret');
  out.username = stringOption(opts, 'username') ?? (url.username ? decodeURIComponent(url.username) : undefined);
  if (passwordSecret !== undefined) out.password = lookupSecret(passwordSecret);
  else if (url.password) out.password = decodeURIComponent(url.password);
  url.username = '';
  url.password = '';
  return out;
}

/** The options qemu-img keeps in an http image's name, in its printing order. */
const DISPLAY_ORDER = ['password-secret', 'url', 'cookie-secret', 'driver', 'username', 'cookie', 'sslverify'];

export function httpDisplayName(name: string): string | Record<string, JsonOptionValue> {
  if (!isJsonFilename(name)) return name;
  const opts = parseJsonOptions(name);
  const url = stringOption(opts, 'url') ?? stringOption(opts, 'filename') ?? '';
  const kept = new Map<string, JsonOptionValue>([...opts].filter(([k, v]) =>
    DISPLAY_ORDER.includes(k) && !(k === 'sslverify' && (v === true || v === 'on'))));
  kept.set('url', url);
  if ([...kept.keys()].every((k) => k === 'url' || k === 'driver')) return url;
  return Object.fromEntries(DISPLAY_ORDER.filter((k) => kept.has(k)).map((k) => [k, kept.get(k)!]));
}

function parseUrl(driver: HttpDriverName, text: string | undefined): URL {
  if (text === undefined) throw new Error(`The ${driver} driver requires a 'url' option`);
  if (!text.toLowerCase().startsWith(`${driver}://`)) {
    throw new Error(`The ${driver} driver cannot handle the URL '${text}' (it does not start with '${driver}://')`);
  }
  try {
    return new URL(text);
  } catch {
    throw new Error(`Invalid URL '${text}'`);
  }
}

function readaheadOption(v: JsonOptionValue | undefined): number {
  if (v === undefined) return DEFAULT_READAHEAD;
  const bytes = typeof v === 'number' ? v : typeof v === 'string' ? parseSize(v, 'readahead') : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new Error(`Parameter 'readahead' expects a size, not ${JSON.stringify(v)}`);
  if (bytes % 512 !== 0) throw new Error(`readahead size ${bytes} is not a multiple of 512`);
  return bytes;
}

function timeoutOption(v: JsonOptionValue | undefined): number {
  if (v === undefined) return DEFAULT_TIMEOUT;
  const seconds = typeof v === 'number' ? v : typeof v === 'string' && /^-?[0-9]+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(seconds)) throw new Error(`Parameter 'timeout' expects a number of seconds, not ${JSON.stringify(v)}`);
  if (seconds < 0 || seconds > MAX_TIMEOUT) throw new Error(`timeout ${seconds} is negative or too large (at most ${MAX_TIMEOUT} seconds)`);
  return seconds;
}

function boolOption(v: JsonOptionValue | undefined, key: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (v === true || v === 'on') return true;
  if (v === false || v === 'off') return false;
  throw new Error(`Parameter '${key}' expects 'on' or 'off'`);
}
