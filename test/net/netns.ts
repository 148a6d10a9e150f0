/**
 * Test helper: a network namespace whose programs play the guest of a tsemu network
 * backend. The test opens a tap in the host namespace through TapBackend, joins it
 * to the backend under test on a hub, and moves the interface into the namespace
 * (the tap's descriptor keeps working across the move); or it adopts a tap another
 * process (`tsemu net connect`) holds. Needs root (ip netns add,
 * /dev/net/tun) and busybox (udhcpc, ping, wget, nslookup, httpd): without them the
 * test fails, as CI runs as root with busybox installed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FrameBackend } from '../../src/net/backend.js';
import { Hub } from '../../src/net/hub.js';
import { TapBackend } from '../../src/net/tap.js';
import { requirePeer, runProgram, type RunResult } from '../helpers/peers.js';

const DHCP_SCRIPT = `#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route replace default via "$router" dev "$interface"
    echo "lease ip=$ip router=$router dns=$dns boot_file=$boot_file bootfile=$bootfile domain=$domain search=$search"
    ;;
esac
`;

export class GuestNamespace {
  private readonly children: ChildProcess[] = [];

  private constructor(readonly name: string, readonly ifname: string, readonly dir: string, private readonly hub: Hub | null) {}

  /** A fresh interface name for a test's tap. */
  static interfaceName(): string {
    return `tsemu${randomBytes(3).toString('hex')}`;
  }

  /** Creates the namespace, a tap joined with `backend` on a hub, and moves the tap into the namespace. */
  static async create(backend: FrameBackend): Promise<GuestNamespace> {
    GuestNamespace.requirements();
    const tap = TapBackend.open(GuestNamespace.interfaceName());
    return GuestNamespace.setUp(tap.ifname, new Hub([backend, tap]));
  }

  /** Creates the namespace and moves the existing tap `ifname` (held by another process) into it. */
  static async adopt(ifname: string): Promise<GuestNamespace> {
    GuestNamespace.requirements();
    return GuestNamespace.setUp(ifname, null);
  }

  private static requirements(): void {
    if (process.getuid?.() !== 0) throw new Error('namespace tests need root (ip netns, /dev/net/tun); CI runs them as root');
    requirePeer('ip');
    requirePeer('busybox');
  }

  private static async setUp(ifname: string, hub: Hub | null): Promise<GuestNamespace> {
    const name = `tsemu-test-${randomBytes(4).toString('hex')}`;
    const dir = await mkdtemp(path.join(tmpdir(), 'tsemu-netns-'));
    const ns = new GuestNamespace(name, ifname, dir, hub);
    try {
      await ns.host(['ip', 'netns', 'add', name]);
      await ns.host(['ip', 'link', 'set', ifname, 'netns', name]);
      await ns.run(['ip', 'link', 'set', 'lo', 'up']);
      await ns.run(['ip', 'link', 'set', ifname, 'up']);
      await writeFile(path.join(dir, 'dhcp.sh'), DHCP_SCRIPT);
      await chmod(path.join(dir, 'dhcp.sh'), 0o755);
    } catch (err) {
      await ns.destroy();
      throw err;
    }
    return ns;
  }

  private async host(args: string[]): Promise<RunResult> {
    const r = await runProgram(args[0]!, args.slice(1));
    if (r.code !== 0) throw new Error(`${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r;
  }

  /** Runs a program in the namespace and waits for it (non-zero exits are returned, not thrown). */
  exec(args: string[]): Promise<RunResult> {
    return runProgram('ip', ['netns', 'exec', this.name, ...args]);
  }

  /** Like exec, but a non-zero exit throws with the program's output. */
  async run(args: string[]): Promise<RunResult> {
    const r = await this.exec(args);
    if (r.code !== 0) throw new Error(`${args.join(' ')} in ${this.name} failed (${r.code}): ${r.stdout}${r.stderr}`);
    return r;
  }

  /** Starts a long-running program in the namespace (killed by destroy()). */
  spawn(args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.name, ...args], { stdio: 'ignore' });
    this.children.push(child);
    return child;
  }

  /** Gets a lease with busybox udhcpc (5 tries, 2 s apart) and configures the interface; returns udhcpc's output. */
  dhcp(): Promise<RunResult> {
    return this.run(['busybox', 'udhcpc', '-i', this.ifname, '-n', '-q', '-f', '-t', '5', '-T', '2', '-s', path.join(this.dir, 'dhcp.sh')]);
  }

  async destroy(): Promise<void> {
    for (const child of this.children) child.kill('SIGKILL');
    await this.hub?.close();
    await runProgram('ip', ['netns', 'del', this.name]);
    await rm(this.dir, { recursive: true, force: true });
  }
}
