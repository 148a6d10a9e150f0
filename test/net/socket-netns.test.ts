/**
 * The stream and dgram backends carry a segment between two hubs: the user stack on
 * one side, a namespace's tap on the other; the namespace's udhcpc and wget work
 * across the link. The framing is checked byte for byte against QEMU's (a 32-bit
 * big-endian length before each frame on a stream, one frame per datagram).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttp } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { parseNetdevSpec, type UserNetdev } from '../../src/net/spec.js';
import { openBackend } from '../../src/net/create.js';
import { Hub } from '../../src/net/hub.js';
import { StreamBackend } from '../../src/net/stream.js';
import { DgramBackend } from '../../src/net/dgram.js';
import { UserStack } from '../../src/net/user/stack.js';
import { GuestNamespace } from './netns.js';

async function throughLink(makeLink: () => Promise<[StreamBackend | DgramBackend, StreamBackend | DgramBackend]>): Promise<void> {
  const http = createHttp((_req, res) => res.end('across the link\n'));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const [near, far] = await makeLink();
  const user = new Hub([await UserStack.create(parseNetdevSpec('user') as UserNetdev), near]);
  const ns = await GuestNamespace.create(far);
  try {
    assert.match((await ns.dhcp()).stdout, /ip=10\.0\.2\.15/);
    const r = await ns.run(['busybox', 'wget', '-q', '-O', '-', `http://10.0.2.2:${(http.address() as AddressInfo).port}/`]);
    assert.equal(r.stdout, 'across the link\n');
  } finally {
    await ns.destroy();
    await user.close();
    http.close();
  }
}

test('socket,listen= and socket,connect= link a namespace to the user stack', async () => {
  await throughLink(async () => {
    const server = (await openBackend(parseNetdevSpec('socket,listen=127.0.0.1:0'))) as StreamBackend;
    const client = (await openBackend(parseNetdevSpec(`socket,connect=127.0.0.1:${server.port}`))) as StreamBackend;
    return [server, client];
  });
});

/** A UDP port free right now on 127.0.0.1. */
async function freeUdpPort(): Promise<number> {
  const probe = createSocket('udp4');
  await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', resolve));
  const port = probe.address().port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

test('dgram and socket,udp= link a namespace to the user stack', async () => {
  await throughLink(async () => {
    const [p1, p2] = [await freeUdpPort(), await freeUdpPort()];
    const a = (await openBackend(parseNetdevSpec(`socket,udp=127.0.0.1:${p2},localaddr=127.0.0.1:${p1}`))) as DgramBackend;
    const b = (await openBackend(parseNetdevSpec(`dgram,local.host=127.0.0.1,local.port=${p2},remote.host=127.0.0.1,remote.port=${p1}`))) as DgramBackend;
    return [a, b];
  });
});

test('stream framing is QEMU\'s: a 32-bit big-endian length before each frame; a bad length drops the peer', async () => {
  const backend = (await openBackend(parseNetdevSpec('stream,server=on,addr.type=inet,addr.host=127.0.0.1,addr.port=0'))) as StreamBackend;
  const got: Uint8Array[] = [];
  backend.onFrame((f) => got.push(f));
  const peer = connect(backend.port, '127.0.0.1');
  await once(peer, 'connect');
  const frame = Uint8Array.from({ length: 60 }, (_, i) => i);
  const framed = Buffer.concat([Buffer.from([0, 0, 0, 60]), frame]);
  // Split across writes: the backend reassembles.
  peer.write(framed.subarray(0, 3));
  await new Promise((r) => setTimeout(r, 20));
  peer.write(Buffer.concat([framed.subarray(3), framed]));
  while (got.length < 2) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(got.map((f) => Buffer.from(f)), [Buffer.from(frame), Buffer.from(frame)]);
  const received: Buffer[] = [];
  peer.on('data', (d: Buffer) => received.push(d));
  backend.send(frame);
  while (Buffer.concat(received).length < 64) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(Buffer.concat(received), framed);
  const closed = once(peer, 'close');
  peer.write(Buffer.from([0xff, 0xff, 0xff, 0xff]));
  await closed;
  await backend.close();
});
