/**
 * Test helper, run by user-ipv6-echo.test.ts inside a fresh network namespace
 * (unshare -n, as root) so that changing net.ipv4.ping_group_range (which governs
 * ICMPv6 ping sockets too) touches nothing else. The namespace's lo gets
 * 2001:db8::1 (a documentation address that exists only here), so the guest's
 * ICMPv6 echo requests leave the user stack through its ICMPv6 socket and stay on
 * this namespace's loopback. Prints one JSON line of results.
 */
import { execFileSync } from 'node:child_process';
import { formatIpv6, parseIpv6 } from '../../src/net/user/ip-address.js';
import { PROTO_ICMPV6 } from '../../src/net/user/packet.js';
import { SyntheticGuest } from './synthetic.js';
import { echo6, Frame6, isIpv6 } from './user-ipv6-guest.js';

const LOCAL_ONLY = parseIpv6('2001:db8::1');

const sh = (...args: string[]): void => void execFileSync(args[0]!, args.slice(1), { stdio: 'ignore' });
sh('sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=0');
sh('ip', 'link', 'set', 'lo', 'up');
sh('ip', '-6', 'addr', 'add', '2001:db8::1/128', 'dev', 'lo', 'nodad');

interface Reply { src: string; id: number; seq: number; data: string; checksumOk: boolean }

/** Sends `count` echo requests to `dst` and collects the replies, waiting `waitMs` for each. */
async function replies(g: SyntheticGuest, dst: Uint8Array, count: number, waitMs: number): Promise<Reply[]> {
  for (let seq = 1; seq <= count; seq++) g.send(echo6(dst, 0xbeef, seq));
  const out: Reply[] = [];
  while (out.length < count) {
    const f = await g.next((x) => isIpv6(x, PROTO_ICMPV6, 129), 'echo reply', waitMs).catch(() => null);
    if (!f) break;
    const r = Frame6.of(f);
    const [id, seq] = [r.view.getUint16(r.l4 + 4), r.view.getUint16(r.l4 + 6)];
    out.push({ src: formatIpv6(r.src), id, seq, data: Buffer.from(r.bytes.subarray(r.l4 + 8)).toString(), checksumOk: r.checksumOk });
  }
  return out;
}

/** Name, ping_group_range, netdev, destination, requests, wait per reply (short where none may come). */
const runs: [string, string, string, Uint8Array, number, number][] = [
  ['denied', '1 0', 'user', LOCAL_ONLY, 2, 1_000],
  ['allowed', '0 2147483647', 'user', LOCAL_ONLY, 3, 20_000],
  ['restricted', '0 2147483647', 'user,restrict=on', LOCAL_ONLY, 1, 1_000],
  ['loopback', '0 2147483647', 'user', parseIpv6('::1'), 1, 1_000],
];
const results: Record<string, unknown> = {};
process.on('warning', (w) => ((results.warnings as string[] | undefined) ?? (results.warnings = [])).push(w.message));
for (const [name, range, spec, dst, count, waitMs] of runs) {
  sh('sysctl', '-q', '-w', `net.ipv4.ping_group_range=${range}`);
  const g = await SyntheticGuest.create(spec);
  results[name] = await replies(g, dst, count, waitMs);
  await g.close();
}
await new Promise((r) => setImmediate(r));
console.log(JSON.stringify(results));
