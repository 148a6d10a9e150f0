/**
 * Opens the backend a parsed netdev specification describes, and joins several on
 * a hub (what `tsemu net connect` runs). Errors name the backend that failed; backends
 * already opened are closed again when a later one fails. A tap without vnet_hdr=
 * gets virtio-net headers when the kernel offers them, as in QEMU. A user stack alone on a
 * segment with a tap that has them gets offloads both ways (enableOffloads):
 * the guest's stack may then hand the tap 64 KiB TCP segments with partial checksums
 * and the user stack send them, where a plain tap needs 44 frames of 1514 bytes.
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
    case 'tap': return TapBackend.open(spec.ifname, { vnetHdr: spec.vnetHdr ?? TapBackend.offersVnetHeaders() });
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
  enableOffloads(opened);
  return new Hub(opened);
}

/** Turns on checksum and TCP segmentation offloads between a user stack and a vnet_hdr tap that are alone on a segment. */
function enableOffloads(backends: readonly FrameBackend[]): void {
  if (backends.length !== 2) return;
  const user = backends.find((b) => b instanceof UserStack);
  const tap = backends.find((b) => b instanceof TapBackend);
  if (!(user instanceof UserStack) || !(tap instanceof TapBackend) || tap.vnetHeaderLength === 0) return;
  tap.setOffload({ csum: true, tso4: true, tso6: true });
  user.enableOffloads();
}
