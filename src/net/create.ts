/**
 * Opens the backend a parsed netdev specification describes, and joins several on
 * a hub (what `tsemu net connect` runs). Errors name the backend that failed; backends
 * already opened are closed again when a later one fails.
 */
import type { FrameBackend } from './backend.js';
import { BridgeBackend } from './bridge.js';
import { Hub } from './hub.js';
import { parseNetdevSpec, type NetdevSpec } from './spec.js';
import { StreamBackend } from './stream.js';
import { DgramBackend } from './dgram.js';
import { McastBackend } from './mcast.js';
import { TapBackend } from './tap.js';
import { UserStack } from './user/stack.js';

export async function openBackend(spec: NetdevSpec): Promise<FrameBackend> {
  switch (spec.type) {
    case 'user': return UserStack.create(spec);
    case 'tap': return TapBackend.open(spec.ifname, { vnetHdr: spec.vnetHdr });
    case 'bridge': return BridgeBackend.open(spec.br, spec.ifname);
    case 'stream': return spec.server ? StreamBackend.listen(spec.address) : StreamBackend.connect(spec.address);
    case 'dgram': return DgramBackend.open(spec.local, spec.remote);
    case 'mcast': return McastBackend.open(spec.group, spec.localAddr);
  }
}

/** Parses and opens each specification and joins them on a hub. */
export async function connectBackends(specs: readonly string[]): Promise<Hub> {
  const parsed = specs.map(parseNetdevSpec);
  const opened: FrameBackend[] = [];
  try {
    for (const spec of parsed) opened.push(await openBackend(spec));
  } catch (err) {
    await Promise.all(opened.map((b) => b.close()));
    throw err;
  }
  return new Hub(opened);
}
