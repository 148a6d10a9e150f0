/**
 * The multicast socket backend (socket,mcast=GROUP:PORT,localaddr=127.0.0.1): two
 * backends on one group on the host's loopback form a segment. Frames cross as bare
 * datagrams (QEMU's wire), a backend never hears its own frames, and the user stack
 * behind one backend answers ARP asked through the other. The group is a random
 * administratively scoped one (239.255.0.0/16) with TTL 1, on 127.0.0.1 only.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { randomInt } from 'node:crypto';
import { parseNetdevSpec, type UserNetdev } from '../../src/net/spec.js';
import { openBackend } from '../../src/net/create.js';
import { Hub } from '../../src/net/hub.js';
import type { FrameBackend } from '../../src/net/backend.js';
import { UserStack } from '../../src/net/user/stack.js';

const GROUP = `239.255.${randomInt(1, 255)}.${randomInt(1, 255)}`;
const PORT = randomInt(20_000, 60_000);
const SPEC = `socket,mcast=${GROUP}:${PORT},localaddr=127.0.0.1`;

const opened: { close(): Promise<void> }[] = [];
after(async () => {
  for (const b of opened) await b.close();
});

async function backend(): Promise<FrameBackend> {
  const b = await openBackend(parseNetdevSpec(SPEC));
  opened.push(b);
  return b;
}

/** Collects a backend's frames; wait() resolves at the first one the predicate accepts. */
function collect(b: FrameBackend): { frames: Uint8Array[]; wait(accept: (f: Uint8Array) => boolean): Promise<Uint8Array> } {
  const frames: Uint8Array[] = [];
  let waiter: (() => void) | null = null;
  b.onFrame((f) => {
    frames.push(f);
    waiter?.();
  });
  return {
    frames,
    async wait(accept) {
      for (;;) {
        const hit = frames.find(accept);
        if (hit) return hit;
        await new Promise<void>((resolve) => { waiter = resolve; });
      }
    },
  };
}

test('socket,mcast= parses like QEMU\'s and refuses non-multicast groups', () => {
  assert.deepEqual(parseNetdevSpec('socket,mcast=230.0.0.1:1234'), { type: 'mcast', id: undefined, group: { host: '230.0.0.1', port: 1234 }, localAddr: undefined });
  assert.deepEqual(parseNetdevSpec('socket,id=m,mcast=239.1.2.3:5,localaddr=127.0.0.1'), { type: 'mcast', id: 'm', group: { host: '239.1.2.3', port: 5 }, localAddr: '127.0.0.1' });
  assert.throws(() => parseNetdevSpec('socket,mcast=10.0.0.1:1234'), /not a multicast address/);
  assert.throws(() => parseNetdevSpec('socket,mcast=230.0.0.1:0'), /needs a port/);
  assert.throws(() => parseNetdevSpec('socket,mcast=230.0.0.1:1,localaddr=127.0.0.1:5'), /not an IPv4 address/);
  assert.throws(() => parseNetdevSpec('socket,mcast=230.0.0.1:1,udp=a:1'), /exactly one of/);
});

test('two backends on the group exchange frames as bare datagrams and never hear their own', async () => {
  const a = await backend();
  const b = await backend();
  const fromA = collect(a);
  const atB = collect(b);
  const watcher = createSocket({ type: 'udp4', reuseAddr: true });
  opened.push({ close: () => new Promise<void>((resolve) => watcher.close(() => resolve())) });
  await new Promise<void>((resolve) => watcher.bind(PORT, GROUP, resolve));
  watcher.addMembership(GROUP, '127.0.0.1');
  const frame = Uint8Array.from({ length: 60 }, (_, i) => i);
  frame.fill(0xff, 0, 6);
  const seen = once(watcher, 'message');
  a.send(frame);
  assert.deepEqual(await atB.wait((f) => f.length === 60), frame);
  assert.deepEqual(new Uint8Array((await seen)[0] as Buffer), frame, 'the wire carries the frame alone');
  const back = frame.slice();
  back[59] = 0xee;
  b.send(back);
  assert.deepEqual(await fromA.wait((f) => f[59] === 0xee), back);
  // Short datagrams sent by anyone else are not frames.
  watcher.send(Buffer.alloc(10), PORT, GROUP);
  a.send(frame); // a marker after the short datagram
  await atB.wait((f) => atB.frames.indexOf(f) > 0 && f[59] === 59);
  assert.equal(fromA.frames.length, 1, 'a heard only b\'s frame');
  assert.equal(atB.frames.length, 2, 'b heard a\'s two frames and no short datagram');
});

test('the user stack behind one backend answers ARP asked through another', async () => {
  const stackSide = await backend();
  const guestSide = await backend();
  opened.push(new Hub([await UserStack.create(parseNetdevSpec('user') as UserNetdev), stackSide]));
  const heard = collect(guestSide);
  const mac = Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x99);
  const request = new Uint8Array(42);
  const v = new DataView(request.buffer, request.byteOffset, request.byteLength);
  request.fill(0xff, 0, 6);
  request.set(mac, 6);
  v.setUint16(12, 0x0806);
  v.setUint32(14, 0x00010800);
  v.setUint16(18, 0x0604);
  v.setUint16(20, 1);
  request.set(mac, 22);
  v.setUint32(28, 0x0a00020f);
  v.setUint32(38, 0x0a000202);
  guestSide.send(request);
  const reply = await heard.wait((f) => f.length >= 42 && f[12] === 0x08 && f[13] === 0x06 && f[21] === 2);
  assert.equal(new DataView(reply.buffer, reply.byteOffset).getUint32(28), 0x0a000202);
  assert.deepEqual(reply.subarray(0, 6), mac);
});
