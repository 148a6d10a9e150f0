/**
 * What an nbd protocol name points at: an NBD URI (uri.ts), or a protocol-level
 * `json:{"driver":"nbd",…}` name with QEMU's nbd driver options, required as
 * QEMU requires them: server.type ("inet" or "unix"), server.host and
 * server.port (a string or a number) for inet, server.path for unix; export
 * (the default export "" when absent); or filename (an NBD URI, alone). Any
 * other option is an error naming it, and a missing one is qemu-img's message.
 *
 * canonicalNbdUri() spells a target the way qemu-img shows an nbd image's name:
 * `nbd://HOST:PORT` (the port always written, no trailing slash) with `/EXPORT`
 * when there is an export, and `nbd+unix:///EXPORT?socket=PATH`.
 */
import { isJsonFilename, jsonDriverOf, type JsonOptionValue, parseJsonOptions, stringOption } from '../json-options.js';
import { describeAddress, isNbdUri, type NbdUri, parseNbdUri } from './uri.js';

const KNOWN = new Set(['driver', 'filename', 'export', 'server.type', 'server.host', 'server.port', 'server.path']);

/** Whether the nbd driver takes `name`: an NBD URI or a json: name of driver "nbd". */
export function isNbdName(name: string): boolean {
  return isNbdUri(name) || jsonDriverOf(name) === 'nbd';
}

export function parseNbdTarget(name: string): NbdUri {
  if (!isJsonFilename(name)) return parseNbdUri(name);
  const opts = parseJsonOptions(name);
  for (const key of opts.keys()) {
    if (!KNOWN.has(key)) throw new Error(`Block protocol 'nbd' doesn't support the option '${key}'`);
  }
  const uri = stringOption(opts, 'filename');
  const serverKeys = [...opts.keys()].filter((k) => k.startsWith('server.') || k === 'export');
  if (uri !== undefined) {
    if (serverKeys.length > 0) throw new Error(`No '${serverKeys[0]}' is allowed with an NBD URI in 'filename'`);
    return parseNbdUri(uri);
  }
  if (!serverKeys.some((k) => k.startsWith('server.'))) throw new Error('NBD server address missing');
  const type = stringOption(opts, 'server.type');
  const host = stringOption(opts, 'server.host');
  const socket = stringOption(opts, 'server.path');
  const exportName = stringOption(opts, 'export') ?? '';
  if (type === undefined) throw new Error("Parameter 'type' is missing");
  if (type === 'unix') {
    if (socket === undefined) throw new Error("Parameter 'path' is missing");
    if (host !== undefined || opts.has('server.port')) throw new Error("A unix socket server takes no 'server.host' or 'server.port'");
    return { address: { path: socket }, exportName };
  }
  if (type !== 'inet') throw new Error(`Parameter 'server.type' does not accept value '${type}' (inet or unix)`);
  if (host === undefined) throw new Error("Parameter 'host' is missing");
  if (socket !== undefined) throw new Error("An inet server takes no 'server.path'");
  return { address: { host, port: portOption(opts.get('server.port')) }, exportName };
}

function portOption(v: JsonOptionValue | undefined): number {
  if (v === undefined) throw new Error("Parameter 'port' is missing");
  const port = typeof v === 'number' ? v : typeof v === 'string' && /^[0-9]+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`Parameter 'server.port' expects a port number, not ${JSON.stringify(v)}`);
  return port;
}

export function canonicalNbdUri({ address, exportName }: NbdUri): string {
  if ('path' in address) return `nbd+unix:///${exportName}?socket=${address.path}`;
  return `nbd://${describeAddress(address)}${exportName === '' ? '' : `/${exportName}`}`;
}
