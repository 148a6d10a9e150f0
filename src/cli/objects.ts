/**
 * `--object TYPE,id=ID,…` of qemu-img's commands. tsemu knows one object type,
 * QEMU's `secret`: `secret,id=ID,data=VALUE` or `secret,id=ID,file=PATH`, with
 * `format=raw` (default) or `format=base64` for how the value is spelled. The
 * value is decoded and put in the secret store (block/secrets.ts), where drivers
 * find it by id (`password-secret=ID`). A file's content is taken byte for byte,
 * trailing newline included, as QEMU takes it. Encrypted secrets (keyid=, iv=)
 * and every other object type are refused with an error naming the parameter.
 */
import { readFileSync } from 'node:fs';
import { Flags } from '@oclif/core';
import { parseOptionString } from '../block/options.js';
import { defineSecret } from '../block/secrets.js';
import { describeErrno } from '../block/protocols/file.js';

/** The --object flag of the img commands that open images. */
export const objectFlag = Flags.string({
  description: 'object definition: secret,id=ID,data=VALUE|file=PATH[,format=raw|base64]',
  multiple: true,
  multipleNonGreedy: true,
});

const SECRET_PARAMS = new Set(['id', 'data', 'file', 'format']);

/** Defines every object of `definitions` (the repeated --object values), in order. */
export function defineObjects(definitions: readonly string[] | undefined): void {
  for (const def of definitions ?? []) defineObject(def);
}

function defineObject(definition: string): void {
  const params = parseOptionString(definition);
  const type = objectType(params, definition);
  if (type !== 'secret') throw new Error(`Parameter 'qom-type' does not accept value '${type}'`);
  for (const key of params.keys()) {
    if (key === 'keyid' || key === 'iv') throw new Error(`secret '${params.get('id') ?? ''}': encrypted secrets (${key}=) are not supported`);
    if (!SECRET_PARAMS.has(key)) throw new Error(`Property 'secret.${key}' not found`);
  }
  const id = params.get('id');
  if (id === undefined) throw new Error("Parameter 'id' is missing");
  defineSecret(id, secretValue(params));
}

/** The type, spelled `qom-type=TYPE` or as the bare first word; removed from `params`. */
function objectType(params: Map<string, string>, definition: string): string {
  const typed = params.get('qom-type');
  if (typed !== undefined) {
    params.delete('qom-type');
    return typed;
  }
  const [first] = params.keys();
  if (first === undefined || params.get(first) !== 'on') throw new Error(`Invalid object definition: ${definition}`);
  params.delete(first);
  return first;
}

function secretValue(params: Map<string, string>): string {
  const data = params.get('data');
  const file = params.get('file');
  if (data !== undefined && file !== undefined) throw new Error("'file' and 'data' are mutually exclusive");
  if (data === undefined && file === undefined) throw new Error("Either 'file' or 'data' must be provided");
  const raw = data ?? readSecretFile(file!);
  const format = params.get('format') ?? 'raw';
  if (format === 'raw') return raw;
  if (format !== 'base64') throw new Error(`Parameter 'format' does not accept value '${format}'`);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(raw.trim()) || raw.trim().length % 4 !== 0) {
    throw new Error(`secret '${params.get('id') ?? ''}': the value is not valid base64`);
  }
  return Buffer.from(raw.trim(), 'base64').toString();
}

function readSecretFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`Unable to read ${file}: ${describeErrno(e)}`);
  }
}
