/**
 * The user network stack with a real Linux guest: a network namespace's own programs
 * (busybox udhcpc, ping, wget, nslookup, httpd, and node) talk through a tap joined to
 * the stack. Traffic stays on the host's loopback and the test's namespaces.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, get, type Server } from 'node:http';
import { createSocket } from 'node:dgram';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { readdirSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseNetdevSpec, type UserNetdev } from '../../src/net/spec.js';
import { UserStack } from '../../src/net/user/stack.js';
import { GuestNamespace } from './netns.js';

const BIG = randomBytes(6 << 20);
/** busybox wget posts its file as a C string: the upload is text. */
const TEXT = Buffer.from(randomBytes(3 << 20).toString('base64'));
const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

let ns: GuestNamespace;
let stack: UserStack;
let server: Server;
let httpPort: number;
let connections = 0;
let tftpRoot: string;
const BOOT = randomBytes(300_000);

async function listen(s: Server): Promise<number> {
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return (s.address() as AddressInfo).port;
}

before(async () => {
  server = createServer((req, res) => {
    if (req.url === '/big') return void res.end(BIG);
    if (req.url === '/upload') {
      const hash = createHash('sha256');
      req.on('data', (d: Buffer) => hash.update(d));
      req.on('end', () => res.end(hash.digest('hex')));
      return;
    }
    res.end('hello from the host\n');
  });
  server.on('connection', () => connections++);
  httpPort = await listen(server);
  tftpRoot = await mkdtemp(path.join(tmpdir(), 'tsemu-tftp-'));
  await writeFile(path.join(tftpRoot, 'boot.bin'), BOOT);
  await writeFile(path.join(tftpRoot, 'exact.bin'), BOOT.subarray(0, 512 * 8));
  stack = await UserStack.create(parseNetdevSpec(`user,hostfwd=tcp:127.0.0.1:0-:8080,tftp=${tftpRoot},bootfile=boot.bin,` +
    'guestfwd=tcp:10.0.2.100:1234-cmd:tr a-z A-Z,domainname=lab.test,dnssearch=lab.test,dnssearch=corp.lab.test,dnssearch=example.org') as UserNetdev);
  ns = await GuestNamespace.create(stack);
});

after(async () => {
  await ns?.destroy();
  server?.close();
  if (tftpRoot) await rm(tftpRoot, { recursive: true, force: true });
});

test('udhcpc in the namespace gets 10.0.2.15 with router 10.0.2.2, DNS 10.0.2.3, the boot file, domain and search list', async () => {
  const r = await ns.dhcp();
  assert.match(r.stdout, /lease ip=10\.0\.2\.15 router=10\.0\.2\.2 dns=10\.0\.2\.3 boot_file=boot\.bin bootfile=boot\.bin domain=lab\.test search=lab\.test corp\.lab\.test example\.org\n/);
});

test('ping 10.0.2.2 is answered', async () => {
  const r = await ns.run(['busybox', 'ping', '-c', '3', '-W', '5', '10.0.2.2']);
  assert.match(r.stdout, /3 packets received/);
});

test('an HTTP fetch from the namespace reaches a server on the host\'s 127.0.0.1', async () => {
  const r = await ns.run(['busybox', 'wget', '-q', '-O', '-', `http://10.0.2.2:${httpPort}/`]);
  assert.equal(r.stdout, 'hello from the host\n');
});

test('6 MiB host → guest (binary) and 4 MiB guest → host (text) arrive intact', async () => {
  const down = await ns.run(['sh', '-c', `busybox wget -q -O - http://10.0.2.2:${httpPort}/big | busybox sha256sum`]);
  assert.equal(down.stdout.split(' ')[0], sha256(BIG));
  const file = path.join(ns.dir, 'upload.bin');
  await writeFile(file, TEXT);
  const up = await ns.run(['busybox', 'wget', '-q', '-O', '-', `--post-file=${file}`, `http://10.0.2.2:${httpPort}/upload`]);
  assert.equal(up.stdout, sha256(TEXT));
});

test('a name from the host\'s /etc/hosts resolves through 10.0.2.3 (host loopback as 10.0.2.2)', async () => {
  const r = await ns.run(['busybox', 'nslookup', 'localhost', '10.0.2.3']);
  assert.match(r.stdout, /Address:\s*10\.0\.2\.2\b/);
});

test('UDP from the namespace reaches a host socket on 127.0.0.1 and the reply comes back; 8 KB datagrams fragmented both ways', async () => {
  const echo = createSocket('udp4');
  echo.on('message', (msg, from) => echo.send(Buffer.concat([Buffer.from('echo:'), msg]), from.port, from.address));
  await new Promise<void>((resolve) => echo.bind(0, '127.0.0.1', resolve));
  const port = echo.address().port;
  const script = (payload: string): string => `const s=require('dgram').createSocket('udp4');const p=${payload};` +
    `s.on('message',m=>{console.log(m.length+':'+String(m).slice(0,9));process.exit(0)});` +
    `setInterval(()=>s.send(p,${port},'10.0.2.2'),500);s.send(p,${port},'10.0.2.2');`;
  try {
    assert.equal((await ns.run([process.execPath, '-e', script("'ping'")])).stdout.trim(), '9:echo:ping');
    assert.equal((await ns.run([process.execPath, '-e', script("'x'.repeat(8000)")])).stdout.trim(), '8005:echo:xxxx');
  } finally {
    echo.close();
  }
});

test('ping with 4,000-byte payloads: fragmented requests are reassembled and the replies fragmented', async () => {
  const r = await ns.run(['busybox', 'ping', '-c', '2', '-s', '4000', '-W', '5', '10.0.2.2']);
  assert.match(r.stdout, /2 packets received/);
});

test('hostfwd reaches a server in the namespace', async () => {
  const www = path.join(ns.dir, 'www');
  await mkdir(www);
  await writeFile(path.join(www, 'index.html'), 'hello from the guest\n');
  ns.spawn(['busybox', 'httpd', '-f', '-p', '8080', '-h', www]);
  const port = stack.forwards[0]!.port;
  const fetch = (): Promise<string> => new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/index.html' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve(Buffer.concat(chunks).toString()));
    }).on('error', reject);
  });
  // Wait (generously) for httpd to listen: until then the guest answers the forward's SYN with a RST.
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      assert.equal(await fetch(), 'hello from the guest\n');
      break;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
});

test('TFTP: busybox tftp fetches files from tftp= (512-byte and 1400-byte blocks, an exact multiple); escapes are refused', async () => {
  for (const [name, block, expected] of [['boot.bin', '512', BOOT], ['boot.bin', '1400', BOOT], ['exact.bin', '512', BOOT.subarray(0, 4096)]] as const) {
    const local = path.join(ns.dir, `got-${block}-${name}`);
    await ns.run(['busybox', 'tftp', '-g', '-b', block, '-r', name, '-l', local, '10.0.2.2']);
    assert.equal(sha256(await readFile(local)), sha256(expected), `${name} with ${block}-byte blocks`);
  }
  const escape = await ns.exec(['busybox', 'tftp', '-g', '-r', '../../../../etc/passwd', '-l', path.join(ns.dir, 'passwd'), '10.0.2.2']);
  assert.notEqual(escape.code, 0);
  assert.match(escape.stderr, /access violation/);
  const missing = await ns.exec(['busybox', 'tftp', '-g', '-r', 'nothing.bin', '-l', path.join(ns.dir, 'nothing'), '10.0.2.2']);
  assert.match(missing.stderr, /file not found/);
});

test('guestfwd to a command: the guest talks to its standard input and output', async () => {
  const script = `const s=require('net').connect(1234,'10.0.2.100');let got='';s.on('data',d=>got+=d);` +
    `s.on('end',()=>console.log(got));s.end('hello guest forward');`;
  const r = await ns.run([process.execPath, '-e', script]);
  assert.equal(r.stdout.trim(), 'HELLO GUEST FORWARD');
});

test('1,000 concurrent TCP connections from the namespace are served, then every host socket is gone', async () => {
  const echo = createNetServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  const port = (echo.address() as AddressInfo).port;
  const fdsBefore = readdirSync('/proc/self/fd').length;
  const script = `const net=require('net');let ok=0,left=1000;` +
    `for(let i=0;i<1000;i++){const s=net.connect(${port},'10.0.2.2');let got='';` +
    `s.on('connect',()=>s.end('hello '+i));s.on('data',d=>got+=d);` +
    `s.on('error',e=>{console.error(i,e.message);if(--left===0)done()});` +
    `s.on('close',()=>{if(got==='hello '+i)ok++;if(--left===0)done()})}` +
    `function done(){console.log(ok)}`;
  try {
    const r = await ns.run([process.execPath, '-e', script]);
    assert.equal(r.stdout.trim(), '1000', r.stderr);
    // Closing is asynchronous on the host side too: wait (generously) for the table to empty.
    const deadline = Date.now() + 30_000;
    while (stack.stats.tcpConnections > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(stack.stats.tcpConnections, 0);
    assert.ok(readdirSync('/proc/self/fd').length <= fdsBefore + 2, 'no host sockets leak');
  } finally {
    echo.close();
  }
});

test('restrict=on: DHCP and ping of the router work, nothing reaches the host but a guest forward', async () => {
  const restricted = await UserStack.create(parseNetdevSpec(`user,restrict=on,guestfwd=tcp:10.0.2.101:80-tcp:127.0.0.1:${httpPort}`) as UserNetdev);
  const guest = await GuestNamespace.create(restricted);
  try {
    assert.match((await guest.dhcp()).stdout, /ip=10\.0\.2\.15/);
    await guest.run(['busybox', 'ping', '-c', '1', '-W', '5', '10.0.2.2']);
    const before = connections;
    const r = await guest.exec(['busybox', 'wget', '-q', '-O', '-', `http://10.0.2.2:${httpPort}/`]);
    assert.notEqual(r.code, 0);
    assert.equal(connections, before);
    const dns = await guest.exec(['busybox', 'nslookup', '-timeout=2', 'localhost', '10.0.2.3']);
    assert.doesNotMatch(dns.stdout, /10\.0\.2\.2/);
    // A guest forward is the one way out.
    const forwarded = await guest.run(['busybox', 'wget', '-q', '-O', '-', 'http://10.0.2.101/']);
    assert.equal(forwarded.stdout, 'hello from the host\n');
  } finally {
    await guest.destroy();
  }
});
