/**
 * The `http` and `https` entries of the protocol table: each claims the names of
 * its scheme (http-options.ts) and shows them as qemu-img does; opening one loads
 * the HTTP node (http.ts, with its transport and undici) then, so commands on
 * host files never load it.
 */
import { type HttpDriverName, httpDisplayName, httpDriverOf } from './http-options.js';
import type { ProtocolDriver } from './protocol.js';

function protocolDriver(name: HttpDriverName): ProtocolDriver {
  return {
    name,
    claims: (filename) => httpDriverOf(filename) === name,
    open: async (filename, opts) => (await import('./http.js')).HttpNode.open(filename, opts),
    displayName: httpDisplayName,
    withoutImageInfo: true,
  };
}

export const httpDriver = protocolDriver('http');
export const httpsDriver = protocolDriver('https');
