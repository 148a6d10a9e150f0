/**
 * The table of protocol drivers. openProtocol() gives a name to the first driver
 * that claims it (by URL scheme) and every other name to the host-file protocol,
 * as QEMU's protocol probing does for names with and without a "scheme:" prefix.
 */
import { FileNode } from './file.js';
import { httpDriver, httpsDriver } from './http-driver.js';
import { jsonNameGuard } from './json-guard.js';
import { nbdProtocol } from '../nbd/client-driver.js';
import { ovaDiskProtocol } from '../formats/ova/protocol.js';
import type { ProtocolDriver, ProtocolNode, ProtocolOpenOptions } from './protocol.js';

const PROTOCOLS: ProtocolDriver[] = [nbdProtocol, httpDriver, httpsDriver, ovaDiskProtocol, jsonNameGuard];

/** The driver for `filename`, or null for a host file. */
export function findProtocol(filename: string): ProtocolDriver | null {
  return PROTOCOLS.find((p) => p.claims(filename)) ?? null;
}

export async function openProtocol(filename: string, opts: ProtocolOpenOptions = {}): Promise<ProtocolNode> {
  const driver = findProtocol(filename);
  return driver ? driver.open(filename, opts) : FileNode.open(filename, opts);
}
