/**
 * The user network's IPv6 side with a real Linux guest: a network namespace's
 * kernel takes a SLAAC address from the stack's router advertisement, and its
 * programs (busybox ping, wget, nslookup, httpd, and node) reach the host's ::1
 * through fec0::2. Traffic stays on the host's loopback and the test's namespaces.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, get, type Server } from 'node:http';
import { createSocket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseNetdevSpec, type UserNetdev } from '../../src/net/spec.js';
import { UserStack } from '../../src/net/user/stack.js';
import { GuestNamespace } from './netns.js';

let ns: GuestNamespace;
let stack: UserStack;
let server: Server;
let httpPort: number;
let connections = 0;
const BIG = randomBytes(4 << 20);
const BOOT = randomBytes(100_000);
let tftpRoot: string;
const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** Polls `probe` (generously) until it gives a value. */
async function waitFor<T>(what: string, probe: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = await probe();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Turns IPv6 on in a namespace, accepting router advertisements, and restarts its autoconfiguration. */
async function enableIpv6(guest: GuestNamespace): Promise<void> {
  const set = (key: string, value: number): Promise<unknown> => guest.run(['sysctl', '-q', '-w', `net.ipv6.conf.${key}=${value}`]);
  for (const scope of ['all', 'default', guest.ifname]) await set(`${scope}.disable_ipv6`, 0);
  await set(`${guest.ifname}.accept_ra`, 2);
  // Turning IPv6 off and on again makes the kernel solicit a router now, with accept_ra in force.
  await set(`${guest.ifname}.disable_ipv6`, 1);
  await set(`${guest.ifname}.disable_ipv6`, 0);
}

/** The namespace's address in fec0::/64 (site scope to Linux) once duplicate address detection is done. */
function slaacAddress(guest: GuestNamespace): Promise<string> {
  return waitFor('a SLAAC address', async () => {
    const r = await guest.run(['ip', '-6', '-o', 'addr', 'show', 'dev', guest.ifname]);
    const m = /inet6 (fec0:[0-9a-f:]+)\/64 .*/.exec(r.stdout);
    return m && !/tentative/.test(m[0]) ? m[1]! : null;
  });
}

before(async () => {
  server = createServer((req, res) => res.end(req.url === '/big' ? BIG : `hello over IPv6 from ${req.socket.remoteAddress}\n`));
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '::1', resolve));
  httpPort = (server.address() as AddressInfo).port;
  tftpRoot = await mkdtemp(path.join(tmpdir(), 'tsemu-tftp6-'));
  await writeFile(path.join(tftpRoot, 'boot.bin'), BOOT);
  stack = await UserStack.create(parseNetdevSpec(`user,hostfwd=tcp:[::1]:0-:8080,tftp=${tftpRoot}`) as UserNetdev);
  ns = await GuestNamespace.create(stack);
  await enableIpv6(ns);
});

after(async () => {
  await ns?.destroy();
  server?.close();
  if (tftpRoot) await rm(tftpRoot, { recursive: true, force: true });
});

test('the namespace\'s kernel takes a SLAAC address in fec0::/64 and a default route via fe80::2 from the router advertisement', async () => {
  const addr = await slaacAddress(ns);
  assert.match(addr, /^fec0::/);
  const route = await ns.run(['ip', '-6', 'route', 'show', 'default']);
  assert.match(route.stdout, /via fe80::2 /);
});

test('ping -6 fec0::2 and the router\'s link-local fe80::2 are answered', async () => {
  await slaacAddress(ns);
  assert.match((await ns.run(['busybox', 'ping', '-6', '-c', '3', '-W', '5', 'fec0::2'])).stdout, /3 packets received/);
  assert.match((await ns.run(['busybox', 'ping', '-6', '-c', '1', '-W', '5', '-I', ns.ifname, 'fe80::2'])).stdout, /1 packets received/);
});

test('an HTTP fetch from the namespace to [fec0::2] reaches a server on the host\'s ::1; 4 MiB arrive intact', async () => {
  await slaacAddress(ns);
  const r = await ns.run(['busybox', 'wget', '-q', '-O', '-', `http://[fec0::2]:${httpPort}/`]);
  assert.equal(r.stdout, 'hello over IPv6 from ::1\n');
  const big = await ns.run(['sh', '-c', `busybox wget -q -O - http://[fec0::2]:${httpPort}/big | busybox sha256sum`]);
  assert.equal(big.stdout.split(' ')[0], sha256(BIG), '4 MiB arrive intact');
});

test('UDP from the namespace to [fec0::2] reaches a host socket on ::1 and the reply comes back; 8 KB datagrams fragmented both ways', async () => {
  await slaacAddress(ns);
  const echo = createSocket('udp6');
  echo.on('message', (msg, from) => echo.send(Buffer.concat([Buffer.from('echo:'), msg]), from.port, from.address));
  await new Promise<void>((resolve) => echo.bind(0, '::1', resolve));
  const script = (payload: string): string => `const s=require('dgram').createSocket('udp6');const p=${payload};` +
    `s.on('message',m=>{console.log(m.length+':'+String(m).slice(0,10));process.exit(0)});` +
    `const go=()=>s.send(p,${echo.address().port},'fec0::2');setInterval(go,500);go();`;
  try {
    assert.equal((await ns.run([process.execPath, '-e', script("'ping6'")])).stdout.trim(), '10:echo:ping6');
    assert.equal((await ns.run([process.execPath, '-e', script("'x'.repeat(8000)")])).stdout.trim(), '8005:echo:xxxxx');
  } finally {
    echo.close();
  }
});

test('ping -6 with 4,000-byte payloads: fragmented requests are reassembled and the replies fragmented', async () => {
  await slaacAddress(ns);
  assert.match((await ns.run(['busybox', 'ping', '-6', '-c', '2', '-s', '4000', '-W', '5', 'fec0::2'])).stdout, /2 packets received/);
});

test('DNS at fec0::3 resolves a name from the host\'s /etc/hosts (localhost as the host address)', async () => {
  await slaacAddress(ns);
  const r = await ns.run(['busybox', 'nslookup', 'localhost', 'fec0::3']);
  assert.match(r.stdout, /Server:\s*fec0::3/);
  assert.match(r.stdout, /Address:\s*10\.0\.2\.2\b/);
});

test('TFTP at fec0::2: busybox tftp fetches a file from tftp= (512-byte and 1400-byte blocks)', async () => {
  await slaacAddress(ns);
  for (const block of ['512', '1400']) {
    const local = path.join(ns.dir, `boot6-${block}.bin`);
    await ns.run(['busybox', 'tftp', '-g', '-b', block, '-r', 'boot.bin', '-l', local, 'fec0::2']);
    assert.equal(sha256(await readFile(local)), sha256(BOOT), `${block}-byte blocks`);
  }
});

test('an IPv6 host forward from [::1] reaches a server in the namespace at its SLAAC address', async () => {
  await slaacAddress(ns);
  const www = path.join(ns.dir, 'www');
  await mkdir(www);
  await writeFile(path.join(www, 'index.html'), 'hello from the guest over IPv6\n');
  ns.spawn(['busybox', 'httpd', '-f', '-p', '[::]:8080', '-h', www]);
  const forward = stack.forwards[0]!;
  assert.equal(forward.address, '::1');
  const fetch = (): Promise<string | null> => new Promise((resolve) => {
    get({ host: '::1', port: forward.port, path: '/index.html' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve(Buffer.concat(chunks).toString()));
    }).on('error', () => resolve(null)); // httpd not listening yet: the guest resets the forward's SYN
  });
  assert.equal(await waitFor('the forwarded fetch', fetch), 'hello from the guest over IPv6\n');
});

test('restrict=on cuts IPv6 off too: the router answers ping, nothing reaches the host', async () => {
  const restricted = await UserStack.create(parseNetdevSpec('user,restrict=on') as UserNetdev);
  const guest = await GuestNamespace.create(restricted);
  try {
    await enableIpv6(guest);
    await slaacAddress(guest);
    await guest.run(['busybox', 'ping', '-6', '-c', '1', '-W', '5', 'fec0::2']);
    const before = connections;
    const r = await guest.exec(['busybox', 'wget', '-q', '-T', '3', '-O', '-', `http://[fec0::2]:${httpPort}/`]);
    assert.notEqual(r.code, 0);
    assert.equal(connections, before);
  } finally {
    await guest.destroy();
  }
});
