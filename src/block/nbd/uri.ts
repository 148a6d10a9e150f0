/**
 * NBD URIs as QEMU spells them: `nbd://HOST[:PORT]/EXPORT` (also `nbd+tcp://`),
 * port 10809 when absent, and `nbd+unix:///EXPORT?socket=PATH` (no host). The
 * export name is the path without its leading slash, percent-decoded; an empty
 * path is the default export "". Anything else in the URI is an error that names
 * what is wrong.
 */
import type { NbdAddress } from './client-connection.js';

export interface NbdUri {
  address: NbdAddress;
  exportName: string;
}

const NBD_PORT = 10809;
const SCHEME = /^nbd(\+tcp|\+unix)?:\/\//i;

/** An address as URIs and messages show it: HOST:PORT ([HOST]:PORT for IPv6), or the socket's path. */
export function describeAddress(a: NbdAddress): string {
  return 'path' in a ? a.path : `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}

export function isNbdUri(filename: string): boolean {
  return SCHEME.test(filename);
}

export function parseNbdUri(text: string): NbdUri {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`Invalid NBD URI '${text}'`);
  }
  const transport = url.protocol.toLowerCase().replace(/:$/, '');
  let exportName: string;
  try {
    exportName = decodeURIComponent(url.pathname.replace(/^\//, ''));
  } catch {
    throw new Error(`Invalid NBD URI '${text}': bad percent-encoding in the export name`);
  }
  const params = new URLSearchParams(url.search);
  if (url.username || url.password || url.hash) throw new Error(`Invalid NBD URI '${text}': unexpected user or fragment`);
  if (transport === 'nbd+unix') {
    const socket = params.get('socket');
    if (url.hostname) throw new Error(`Invalid NBD URI '${text}': nbd+unix takes no host`);
    if (!socket || [...params.keys()].some((k) => k !== 'socket')) {
      throw new Error(`Invalid NBD URI '${text}': nbd+unix needs exactly one ?socket=PATH`);
    }
    return { address: { path: socket }, exportName };
  }
  if ([...params.keys()].length > 0) throw new Error(`Invalid NBD URI '${text}': unexpected query parameters`);
  if (!url.hostname) throw new Error(`Invalid NBD URI '${text}': no host`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return { address: { host, port: url.port ? Number(url.port) : NBD_PORT }, exportName };
}
