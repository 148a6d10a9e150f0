/**
 * The options of a QEMU `json:{…}` pseudo-filename: the JSON object, nested
 * objects flattened to dotted keys ({"file":{"url":…}} is "file.url"), keys in the
 * order written. Lists are refused. Parse errors read as QEMU's do. Used by
 * json-filename.ts for whole images and by protocol drivers for their own options.
 */

export type JsonOptionValue = string | number | boolean | null;

const PREFIX = 'json:';

export function isJsonFilename(name: string): boolean {
  return name.startsWith(PREFIX);
}

/** The flattened options of a `json:` name, in the order they were written. */
export function parseJsonOptions(name: string): Map<string, JsonOptionValue> {
  let value: unknown;
  try {
    value = JSON.parse(name.slice(PREFIX.length));
  } catch (e) {
    throw new Error(`Could not parse the JSON options: ${(e as Error).message}`);
  }
  if (!isObject(value)) throw new Error('Invalid JSON object given');
  const out = new Map<string, JsonOptionValue>();
  flatten(value, '', out);
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function flatten(obj: Record<string, unknown>, prefix: string, out: Map<string, JsonOptionValue>): void {
  for (const [key, v] of Object.entries(obj)) {
    const name = prefix + key;
    if (isObject(v)) flatten(v, `${name}.`, out);
    else if (Array.isArray(v)) throw new Error(`Option '${name}': lists are not supported in json: file names`);
    else out.set(name, v as JsonOptionValue);
  }
}

/** The "driver" of a `json:` name, or undefined (not a json: name, unparseable, or no string driver). */
export function jsonDriverOf(name: string): string | undefined {
  if (!isJsonFilename(name)) return undefined;
  try {
    const driver = parseJsonOptions(name).get('driver');
    return typeof driver === 'string' ? driver : undefined;
  } catch {
    return undefined;
  }
}

/** A string option of `opts`, or undefined; a value of another JSON type is an error. */
export function stringOption(opts: ReadonlyMap<string, JsonOptionValue>, key: string): string | undefined {
  const v = opts.get(key);
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new Error(`Invalid parameter type for '${key}', expected: string`);
  return v;
}

