/**
 * The last entry of the protocol table: a `json:{…}` name that reaches the table
 * and no protocol driver claims is refused, so it never falls through to the
 * host-file protocol as a file literally named "json:{…}". openImage() splits an
 * image's json: name before it gets here (json-filename.ts), so what arrives is a
 * name to create, or one whose protocol is unknown: QEMU says "Unknown protocol
 * 'json'" for both.
 */
import type { ProtocolDriver } from './protocol.js';

export const jsonNameGuard: ProtocolDriver = {
  name: 'json',
  claims: (filename) => filename.startsWith('json:'),
  open: async () => {
    throw new Error("Unknown protocol 'json'");
  },
};
