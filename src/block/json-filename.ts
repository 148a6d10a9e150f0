/**
 * QEMU's `json:{…}` pseudo-filenames: a JSON object in place of a file name, whose
 * keys are block options. Nested objects are flattened to dotted keys first, so
 * `{"file":{"driver":"https","url":"…"}}` and `{"file.driver":"https","file.url":"…"}`
 * say the same thing.
 *
 * splitJsonFilename() turns one into what open.ts needs: the format (top-level
 * "driver"), the name to give the protocol table, whether to open the backing
 * chain (`"backing": null` says no), and the options neither understood (the
 * caller names them in an error once it knows the format). The protocol name is:
 * - the plain file name or URL, when that alone says everything ("file.filename",
 *   a top-level "filename", or a "file" string);
 * - otherwise a protocol-level `json:{"driver":…,"url":…,…}` name, which the
 *   protocol driver that owns that driver name claims and parses itself
 *   (json-options.ts); the host-file protocol takes no options beyond its name.
 * A top-level "driver" that names a protocol (`{"driver":"https","url":…}`) opens
 * that protocol as a raw image.
 *
 * displayName() is the name qemu-img shows for an image (info's "image:" and
 * "filename"): a json: name rewritten to the plain name or URL when that says
 * everything, else re-serialised as `json:{"driver": FORMAT, "file": {…}}` in
 * QEMU's spelling (", " and ": " separators) with the options the protocol keeps
 * (just those for a protocol-only name, whose format qemu-img calls by the
 * protocol's name: displayFormat); a plain name as its protocol spells it (an
 * NBD URI normalised).
 */
import { findProtocol } from './protocols/index.js';
import { type JsonOptionValue, isJsonFilename, parseJsonOptions, stringOption } from './json-options.js';

const PREFIX = 'json:';

export interface JsonImageSpec {
  /** The format ("driver"), or undefined to probe. */
  format?: string;
  /** The name for openProtocol(): a plain file name or URL, or a protocol-level json: name. */
  protocolName: string;
  /** The plain file name or URL inside, against which relative backing names resolve. */
  location: string;
  /** False for `"backing": null`. */
  backing: boolean;
  /** The top-level "driver" is a protocol: a raw image that qemu-img calls by the protocol's name. */
  protocolOnly: boolean;
  /** Top-level options nobody took, for the caller's "does not support the option" error. */
  unknown: string[];
}

export function splitJsonFilename(name: string): JsonImageSpec {
  const opts = parseJsonOptions(name);
  const driver = stringOption(opts, 'driver');
  if (driver === 'file' || (driver !== undefined && findProtocol(protocolJson(opts))?.name === driver)) {
    return { format: 'raw', protocolName: protocolName(opts), location: locationOf(opts), backing: true, unknown: [], protocolOnly: true };
  }
  const file = new Map<string, JsonOptionValue>();
  const unknown: string[] = [];
  let backing = true;
  for (const [key, v] of opts) {
    if (key.startsWith('file.')) file.set(key.slice('file.'.length), v);
    else if (key === 'file' || key === 'filename') file.set('filename', v);
    else if (key === 'backing' && v === null) backing = false;
    else if (key !== 'driver') unknown.push(key);
  }
  return { format: driver, protocolName: protocolName(file), location: locationOf(file), backing, unknown, protocolOnly: false };
}

function protocolJson(opts: ReadonlyMap<string, JsonOptionValue>): string {
  return PREFIX + JSON.stringify(Object.fromEntries(opts));
}

function locationOf(opts: ReadonlyMap<string, JsonOptionValue>): string {
  return stringOption(opts, 'url') ?? stringOption(opts, 'filename') ?? '';
}

/** What to give the protocol table for the protocol options `file` (keys without "file."). */
function protocolName(file: Map<string, JsonOptionValue>): string {
  const filename = locationOf(file) || undefined;
  let driver = stringOption(file, 'driver');
  const extra = [...file.keys()].filter((k) => k !== 'driver' && k !== 'filename' && k !== 'url');
  if (extra.length === 0 && filename !== undefined && (driver === undefined || driver === protocolOf(filename))) {
    return filename;
  }
  if (driver === undefined && filename !== undefined) driver = protocolOf(filename);
  if (driver === undefined) throw new Error('A block device must be specified for "file"');
  if (driver === 'file') {
    const bad = extra[0] ?? (file.has('url') ? 'url' : undefined);
    if (bad !== undefined) throw new Error(`Block protocol 'file' doesn't support the option '${bad}'`);
    if (filename === undefined) throw new Error("The 'file' block driver requires a file name");
    return filename;
  }
  const json = protocolJson(new Map([['driver', driver], ...[...file].filter(([k]) => k !== 'driver')]));
  if (findProtocol(json)?.name !== driver) throw new Error(`Unknown driver '${driver}'`);
  return json;
}

/** The driver a plain name goes to: the protocol that claims it, or "file". */
function protocolOf(filename: string): string {
  return findProtocol(filename)?.name ?? 'file';
}

/** The name qemu-img shows for the image `name` of format `format`. */
export function displayName(name: string, format: string): string {
  const spec = isJsonFilename(name) ? splitJsonFilename(name) : null;
  const protocolLevel = spec ? spec.protocolName : name;
  const shown = findProtocol(protocolLevel)?.displayName?.(protocolLevel) ?? protocolLevel;
  if (typeof shown === 'string') return shown;
  return PREFIX + qemuJson(spec?.protocolOnly ? shown : { driver: format, file: shown });
}

/** The format qemu-img reports for the image `name` opened as `format`: a protocol's name for a protocol-only json: name. */
export function displayFormat(name: string, format: string): string {
  const spec = isJsonFilename(name) ? splitJsonFilename(name) : null;
  if (!spec?.protocolOnly) return format;
  return findProtocol(spec.protocolName)?.name ?? 'file';
}

/** A JSON object as QEMU writes it on one line. */
function qemuJson(obj: { [key: string]: JsonOptionValue | { [key: string]: JsonOptionValue } }): string {
  const value = (v: JsonOptionValue | { [key: string]: JsonOptionValue }): string =>
    v !== null && typeof v === 'object' ? qemuJson(v) : JSON.stringify(v);
  return `{${Object.entries(obj).map(([k, v]) => `${JSON.stringify(k)}: ${value(v)}`).join(', ')}}`;
}
