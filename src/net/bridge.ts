/**
 * The bridge backend (QEMU's `-netdev bridge,br=BRIDGE`): a tap interface attached
 * to an existing Linux bridge and brought up, so the segment joins whatever the
 * bridge connects. The attachment is made with iproute2 (`ip link set … master …
 * up`); like the tap it needs CAP_NET_ADMIN. QEMU runs a setuid helper with an ACL
 * for this; tsemu has none: it attaches only when it may itself. The tap goes away
 * (and leaves the bridge) when the backend closes.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { FrameBackend, FrameHandler } from './backend.js';
import { TapBackend } from './tap.js';

const run = promisify(execFile);

export class BridgeBackend implements FrameBackend {
  readonly name: string;

  private constructor(private readonly tap: TapBackend, readonly bridge: string) {
    this.name = `bridge ${bridge} (${tap.ifname})`;
  }

  static async open(bridge: string, ifname?: string): Promise<BridgeBackend> {
    const tap = TapBackend.open(ifname);
    try {
      await run('ip', ['link', 'set', 'dev', tap.ifname, 'master', bridge, 'up']);
    } catch (err) {
      await tap.close();
      const detail = ((err as { stderr?: string }).stderr ?? (err as Error).message).trim();
      throw new Error(`bridge: cannot attach ${tap.ifname} to '${bridge}': ${detail}`);
    }
    return new BridgeBackend(tap, bridge);
  }

  get ifname(): string {
    return this.tap.ifname;
  }

  send(frame: Uint8Array): void {
    this.tap.send(frame);
  }

  onFrame(handler: FrameHandler): void {
    this.tap.onFrame(handler);
  }

  close(): Promise<void> {
    return this.tap.close();
  }
}
