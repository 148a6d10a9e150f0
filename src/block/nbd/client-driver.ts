/**
 * The `nbd` entry of the protocol table: it claims QEMU's NBD names (target.ts)
 * and shows an export by its canonical URI; opening one loads the client
 * (client.ts, with node:net and the wire protocol) then, so commands on host
 * files never load it.
 */
import type { ProtocolDriver } from '../protocols/protocol.js';
import { canonicalNbdUri, isNbdName, parseNbdTarget } from './target.js';

export const nbdProtocol: ProtocolDriver = {
  name: 'nbd',
  claims: isNbdName,
  open: async (filename, opts) => (await import('./client.js')).NbdNode.open(filename, opts),
  displayName: (filename) => canonicalNbdUri(parseNbdTarget(filename)),
  withoutImageInfo: true,
};
