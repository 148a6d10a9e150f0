/**
 * Offloads between the user stack and a tap opened with vnet_hdr=on (connectBackends
 * turns them on when the two are alone on a segment): a namespace's real TCP stack
 * hands the tap 64 KiB segments with partial checksums, and the user stack sends
 * 64 KiB segments under GSO headers that the kernel delivers. 8 MiB each way between
 * the namespace and a server on the host's 127.0.0.1 arrive intact (SHA-256), and
 * frames beyond the MTU were seen both ways. Needs root and busybox, as netns.ts says.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { connectBackends } from '../../src/net/create.js';
import { TapBackend } from '../../src/net/tap.js';
import { UserStack } from '../../src/net/user/stack.js';
import { isGsoVnetHeader } from '../../src/net/vnet-hdr.js';
import { GuestNamespace } from './netns.js';

const SIZE = 8 << 20;
const LARGEST_PLAIN_FRAME = 1514;

/** The pattern both ends send: byte i is a function of i (so a misplaced segment shows in the hash). */
function pattern(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + (i >>> 11)) & 0xff;
  return b;
}

/** The namespace's side: sends SIZE pattern bytes, then prints the SHA-256 of what the server sends back. */
const CLIENT = `
const net = require('node:net');
const crypto = require('node:crypto');
const [host, port, size] = process.argv.slice(1);
const b = Buffer.alloc(Number(size));
for (let i = 0; i < b.length; i++) b[i] = (i * 31 + (i >>> 11)) & 0xff;
const hash = crypto.createHash('sha256');
let got = 0;
const s = net.connect(Number(port), host, () => s.end(b));
s.on('data', (d) => { hash.update(d); got += d.length; });
s.on('end', () => console.log(got, hash.digest('hex')));
s.on('error', (e) => { console.error(e.message); process.exit(1); });
`;

test('user + tap,vnet_hdr=on: 64 KiB segments both ways carry 8 MiB each way intact', async () => {
  const expected = pattern(SIZE);
  const expectedHash = createHash('sha256').update(expected).digest('hex');
  let fromHostHash = '';
  const server = createServer({ allowHalfOpen: true }, (sock: Socket) => {
    const hash = createHash('sha256');
    sock.on('data', (d: Buffer) => hash.update(d));
    sock.on('end', () => {
      fromHostHash = hash.digest('hex');
      sock.end(expected);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  // Count frames beyond the MTU: taken by the stack (the guest's TSO) and written to the tap under GSO headers.
  let largeIn = 0;
  let largeOut = 0;
  const stackSend = UserStack.prototype.send;
  const tapSend = TapBackend.prototype.send;
  UserStack.prototype.send = function (frame, vnetHdr) {
    if (frame.length > LARGEST_PLAIN_FRAME) largeIn++;
    return stackSend.call(this, frame, vnetHdr);
  };
  TapBackend.prototype.send = function (frame, vnetHdr) {
    if (vnetHdr !== undefined && isGsoVnetHeader(vnetHdr)) largeOut++;
    return tapSend.call(this, frame, vnetHdr);
  };
  const ifname = GuestNamespace.interfaceName();
  const hub = await connectBackends(['user', `tap,ifname=${ifname},vnet_hdr=on`]);
  let ns: GuestNamespace | undefined;
  try {
    ns = await GuestNamespace.adopt(ifname);
    assert.match((await ns.dhcp()).stdout, /ip=10\.0\.2\.15/);
    const r = await ns.run([process.execPath, '-e', CLIENT, '10.0.2.2', String(port), String(SIZE)]);
    assert.equal(r.stdout.trim(), `${SIZE} ${expectedHash}`, 'host → namespace');
    assert.equal(fromHostHash, expectedHash, 'namespace → host');
    assert.ok(largeIn > 0, 'the namespace sent segments larger than the MTU');
    assert.ok(largeOut > 0, 'the stack sent GSO segments');
  } finally {
    UserStack.prototype.send = stackSend;
    TapBackend.prototype.send = tapSend;
    await ns?.destroy();
    await hub.close();
    server.close();
  }
});
