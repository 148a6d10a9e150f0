/**
 * Test helper, run by icmp-echo.test.ts inside a fresh network namespace (unshare -n,
 * as root) so that changing net.ipv4.ping_group_range touches nothing else. The
 * namespace has only lo, which also gets 198.51.100.1 (a documentation address
 * that exists only here), so the guest's pings leave the user stack through NAT and
 * stay on this namespace's loopback. Prints one JSON line of results.
 */
import { execFileSync } from 'node:child_process';
import { PROTO_ICMP } from '../../src/net/user/packet.js';
import { SyntheticGuest, type Frame } from './synthetic.js';

const LOCAL_ONLY = 0xc6336401; // 198.51.100.1, on this namespace's lo

const sh = (...args: string[]): void => void execFileSync(args[0]!, args.slice(1), { stdio: 'ignore' });
sh('ip', 'link', 'set', 'lo', 'up');
sh('ip', 'addr', 'add', '198.51.100.1/32', 'dev', 'lo');
const pingRange = (range: string): void => sh('sysctl', '-q', '-w', `net.ipv4.ping_group_range=${range}`);

function echo(g: SyntheticGuest, dst: number, id: number, seq: number): Uint8Array {
  return g.ipv4(PROTO_ICMP, dst, 8 + 16, (v, at) => {
    v.setUint8(at, 8);
    v.setUint16(at + 4, id);
    v.setUint16(at + 6, seq);
    for (let i = 0; i < 16; i++) v.setUint8(at + 8 + i, 0x40 + i);
  });
}

const isReply = (f: Frame): boolean => f.ethertype === 0x0800 && f.protocol === PROTO_ICMP && f.view.getUint8(f.l4) === 0;

/** Echo replies to `count` requests; `waitMs` is how long to wait for each (short where none may come). */
async function replies(spec: string, dst: number, count: number, waitMs: number): Promise<{ src: number; id: number; seq: number; data: string; checksumOk: boolean }[]> {
  const g = await SyntheticGuest.create(spec);
  try {
    for (let seq = 1; seq <= count; seq++) g.send(echo(g, dst, 0xbeef, seq));
    const out = [];
    for (let n = 0; n < count; n++) {
      const r = await g.next(isReply, 'echo reply', waitMs).catch(() => null);
      if (!r) break;
      let s = 0;
      const l = r.view.getUint16(16) - 20;
      for (let i = 0; i < l; i += 2) s += r.view.getUint16(r.l4 + i);
      while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
      out.push({ src: r.src, id: r.view.getUint16(r.l4 + 4), seq: r.view.getUint16(r.l4 + 6), data: Buffer.from(r.bytes.subarray(r.l4 + 8, r.l4 + 24)).toString(), checksumOk: s === 0xffff });
    }
    return out;
  } finally {
    await g.close();
  }
}

const warnings: string[] = [];
process.on('warning', (w) => warnings.push(w.message));

pingRange('1 0'); // nobody may open an ICMP socket
const denied = await replies('user', LOCAL_ONLY, 2, 1_000);
pingRange('0 2147483647');
const allowed = await replies('user', LOCAL_ONLY, 3, 20_000);
const restricted = await replies('user,restrict=on', LOCAL_ONLY, 1, 1_000);
const loopback = await replies('user', 0x7f000001, 1, 1_000); // 127.0.0.1 is not reachable as itself
await new Promise((r) => setImmediate(r));
console.log(JSON.stringify({ denied, allowed, restricted, loopback, warnings }));
