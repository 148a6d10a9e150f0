/**
 * tap,vnet_hdr=on: the tap carries virtio-net headers. With the user stack on a hub
 * (which knows nothing of headers) a namespace still gets a lease, pings and
 * fetches, at both header sizes; with a recording consumer, frames the namespace
 * sends come with a NEEDS_CSUM header only once checksum offload is on; frames
 * written with a header make the kernel trust a partial checksum and cut a UDP
 * segment. Needs root and /dev/net/tun (CI runs as root).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Hub } from '../../src/net/hub.js';
import { parseNetdevSpec, type UserNetdev } from '../../src/net/spec.js';
import { TapBackend, vnetHdrRefusal } from '../../src/net/tap.js';
import { finish, sum } from '../../src/net/user/checksum.js';
import { ROUTER_MAC, UserStack } from '../../src/net/user/stack.js';
import {
  encodeVnetHeader, isPlainVnetHeader, readVnetHeader, vnetHeaderAsksForWork, VNET_HDR_F_DATA_VALID, VNET_HDR_F_NEEDS_CSUM,
  VNET_HDR_GSO_ECN, VNET_HDR_GSO_TCPV4, VNET_HDR_GSO_UDP_L4,
} from '../../src/net/vnet-hdr.js';
import { GuestNamespace } from './netns.js';

const GUEST = '10.0.2.15';
const GATEWAY_BYTES = [10, 0, 2, 2];
const GUEST_BYTES = [10, 0, 2, 15];
/** UDP header offset in an untagged IPv4 frame, and the checksum's offset in the UDP header. */
const UDP_AT = 14 + 20;
const UDP_CSUM = 6;

test('tap spec: vnet_hdr=on|off is parsed; other values name the option', () => {
  assert.deepEqual(parseNetdevSpec('tap,ifname=t0,vnet_hdr=on'), { type: 'tap', ifname: 't0', vnetHdr: true });
  assert.deepEqual(parseNetdevSpec('tap,vnet_hdr=off'), { type: 'tap', vnetHdr: false });
  assert.equal((parseNetdevSpec('tap') as { vnetHdr?: boolean }).vnetHdr, undefined);
  assert.throws(() => parseNetdevSpec('tap,vnet_hdr=maybe'), /vnet_hdr: 'maybe' is not on or off/);
});

test('vnet_hdr=on is refused with a clear error when the kernel does not offer IFF_VNET_HDR', () => {
  assert.equal(vnetHdrRefusal(0x7000 | 0x0002 | 0x4000), null);
  assert.match(vnetHdrRefusal(0x0002 | 0x1000) ?? '', /vnet_hdr=on: the kernel's TUN\/TAP driver does not offer virtio-net headers \(IFF_VNET_HDR\); use vnet_hdr=off/);
  assert.match(vnetHdrRefusal(null) ?? '', /IFF_VNET_HDR/);
});

test('virtio-net headers: encode, read back, and say whether they ask for work', () => {
  const fields = { flags: VNET_HDR_F_NEEDS_CSUM, gsoType: VNET_HDR_GSO_TCPV4 | VNET_HDR_GSO_ECN, hdrLen: 54, gsoSize: 1448, csumStart: 34, csumOffset: 16 };
  const h = encodeVnetHeader(fields, 12);
  assert.equal(h.length, 12);
  assert.deepEqual([...h], [1, 0x81, 54, 0, 0xa8, 0x05, 34, 0, 16, 0, 0, 0]);
  assert.deepEqual(readVnetHeader(h), fields);
  assert.ok(isPlainVnetHeader(encodeVnetHeader({})));
  assert.ok(!vnetHeaderAsksForWork(encodeVnetHeader({ flags: VNET_HDR_F_DATA_VALID })));
  assert.ok(!isPlainVnetHeader(encodeVnetHeader({ flags: VNET_HDR_F_DATA_VALID })));
  assert.ok(vnetHeaderAsksForWork(h));
  assert.throws(() => encodeVnetHeader({}, 11), /10 or 12 bytes, not 11/);
  assert.throws(() => readVnetHeader(new Uint8Array(4)), /at least 10 bytes/);
});

describe('a vnet_hdr tap on a hub with the user stack', () => {
  let stack: UserStack;
  let tap: TapBackend;
  let hub: Hub;
  let ns: GuestNamespace;
  let server: Server;
  let port: number;

  before(async () => {
    server = createServer((_req, res) => res.end('through a vnet_hdr tap\n'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    stack = await UserStack.create(parseNetdevSpec('user') as UserNetdev);
    tap = TapBackend.open(GuestNamespace.interfaceName(), { vnetHdr: true });
    hub = new Hub([stack, tap]);
    ns = await GuestNamespace.adopt(tap.ifname);
  });

  after(async () => {
    // The tap first: deleting the namespace deletes its interface under a reader.
    await hub?.close();
    await ns?.destroy();
    server?.close();
  });

  test('10-byte headers: the namespace gets a lease, pings the gateway and fetches from the host', async () => {
    assert.equal(tap.vnetHeaderLength, 10);
    assert.match((await ns.dhcp()).stdout, /ip=10\.0\.2\.15 router=10\.0\.2\.2/);
    assert.match((await ns.run(['busybox', 'ping', '-c', '2', '-W', '5', '10.0.2.2'])).stdout, /2 packets received/);
    assert.equal((await ns.run(['busybox', 'wget', '-q', '-O', '-', `http://10.0.2.2:${port}/`])).stdout, 'through a vnet_hdr tap\n');
  });

  test('12-byte headers (TUNSETVNETHDRSZ): traffic still flows both ways', async () => {
    tap.setVnetHeaderLength(12);
    assert.equal(tap.vnetHeaderLength, 12);
    assert.match((await ns.run(['busybox', 'ping', '-c', '2', '-W', '5', '10.0.2.2'])).stdout, /2 packets received/);
    assert.equal((await ns.run(['busybox', 'wget', '-q', '-O', '-', `http://10.0.2.2:${port}/`])).stdout, 'through a vnet_hdr tap\n');
  });
});

/** An untagged IPv4 UDP frame 10.0.2.2:7000 → 10.0.2.15:7777 to `dstMac`, its UDP checksum field set to `udpCheck`. */
function udpFrame(dstMac: Uint8Array, payload: Uint8Array, udpCheck: (frame: Uint8Array) => number): Uint8Array {
  const frame = new Uint8Array(UDP_AT + 8 + payload.length);
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  frame.set(dstMac, 0);
  frame.set(ROUTER_MAC, 6);
  v.setUint16(12, 0x0800);
  v.setUint8(14, 0x45);
  v.setUint16(16, 20 + 8 + payload.length);
  v.setUint8(22, 64);
  v.setUint8(23, 17);
  frame.set(GATEWAY_BYTES, 26);
  frame.set(GUEST_BYTES, 30);
  v.setUint16(24, finish(sum(frame, 14, 20)));
  v.setUint16(UDP_AT, 7000);
  v.setUint16(UDP_AT + 2, 7777);
  v.setUint16(UDP_AT + 4, 8 + payload.length);
  frame.set(payload, UDP_AT + 8);
  v.setUint16(UDP_AT + UDP_CSUM, udpCheck(frame));
  return frame;
}

/** The UDP pseudo header's sum (what a partial checksum holds before the device completes it). */
function pseudoSum(frame: Uint8Array): number {
  return sum(frame, 26, 8, 17 + new DataView(frame.buffer, frame.byteOffset).getUint16(UDP_AT + 4));
}

/** True when a frame's UDP checksum verifies. */
function udpChecksumOk(frame: Uint8Array): boolean {
  const length = new DataView(frame.buffer, frame.byteOffset).getUint16(UDP_AT + 4);
  return finish(sum(frame, UDP_AT, length, pseudoSum(frame))) === 0;
}

describe('a vnet_hdr tap with its headers visible', () => {
  let tap: TapBackend;
  let ns: GuestNamespace;
  let guestMac: Uint8Array;
  const seen: { frame: Uint8Array; hdr: Uint8Array | undefined }[] = [];

  before(async () => {
    tap = TapBackend.open(GuestNamespace.interfaceName(), { vnetHdr: true });
    tap.onFrame((frame, hdr) => {
      // UDP to port 9999 only: the namespace's own chatter (IPv6 router solicitations, …) is not the test's.
      if (frame.length > UDP_AT + 4 && frame[23] === 17 && new DataView(frame.buffer, frame.byteOffset).getUint16(UDP_AT + 2) === 9999) seen.push({ frame, hdr });
    });
    ns = await GuestNamespace.adopt(tap.ifname);
    await ns.run(['ip', 'addr', 'add', `${GUEST}/24`, 'dev', tap.ifname]);
    await ns.run(['ip', 'neigh', 'replace', '10.0.2.2', 'lladdr', '52:55:0a:00:02:02', 'dev', tap.ifname, 'nud', 'permanent']);
    const link = JSON.parse((await ns.run(['ip', '-j', 'link', 'show', 'dev', tap.ifname])).stdout) as { address: string }[];
    guestMac = Uint8Array.from(link[0]!.address.split(':').map((b) => parseInt(b, 16)));
  });

  after(async () => {
    await tap?.close();
    await ns?.destroy();
  });

  async function sendFromGuest(text: string): Promise<{ frame: Uint8Array; hdr: Uint8Array | undefined }> {
    seen.length = 0;
    await ns.run([process.execPath, '-e', `const s = require('node:dgram').createSocket('udp4'); s.send('${text}', 9999, '10.0.2.2', () => s.close());`]);
    const deadline = Date.now() + 30_000;
    while (seen.length === 0) {
      if (Date.now() > deadline) throw new Error('the datagram never reached the tap');
      await new Promise((r) => setTimeout(r, 20));
    }
    return seen[0]!;
  }

  test('offloads off: frames arrive complete, with no header for the consumer', async () => {
    const { frame, hdr } = await sendFromGuest('complete');
    assert.equal(hdr, undefined);
    assert.ok(udpChecksumOk(frame));
    assert.equal(Buffer.from(frame.subarray(UDP_AT + 8)).toString(), 'complete');
  });

  test('checksum offload on: the kernel leaves the checksum partial and says where it goes', async () => {
    tap.setOffload({ csum: true });
    try {
      const { frame, hdr } = await sendFromGuest('partial');
      assert.ok(hdr, 'a header came with the frame');
      const h = readVnetHeader(hdr);
      assert.equal(h.flags & VNET_HDR_F_NEEDS_CSUM, VNET_HDR_F_NEEDS_CSUM);
      assert.equal(h.csumStart, UDP_AT);
      assert.equal(h.csumOffset, UDP_CSUM);
      assert.equal(Buffer.from(frame.subarray(UDP_AT + 8)).toString(), 'partial');
    } finally {
      tap.setOffload({});
    }
  });

  test('frames written with a header: a partial checksum is trusted, a UDP segment is cut in gso_size pieces', async () => {
    const receiver = spawnReceiver(ns.name);
    try {
      await receiver.ready;
      const wrong = (f: Uint8Array): number => (finish(sum(f, UDP_AT, f.length - UDP_AT, pseudoSum(f))) + 1) & 0xffff || 1;
      // A wrong checksum under an empty header: the namespace drops the datagram.
      tap.send(udpFrame(guestMac, Buffer.from('dropped'), wrong));
      // The same wrong bytes under NEEDS_CSUM: the checksum counts as partial, the datagram is delivered.
      const partial = { flags: VNET_HDR_F_NEEDS_CSUM, csumStart: UDP_AT, csumOffset: UDP_CSUM };
      tap.send(udpFrame(guestMac, Buffer.from('trusted'), wrong), encodeVnetHeader(partial));
      // One 3000-byte datagram under a UDP segmentation header arrives as three of 1000 bytes.
      const big = Buffer.alloc(3000, 0x61);
      tap.send(udpFrame(guestMac, big, (f) => ~finish(pseudoSum(f)) & 0xffff), encodeVnetHeader({ ...partial, gsoType: VNET_HDR_GSO_UDP_L4, gsoSize: 1000, hdrLen: UDP_AT + 8 }));
      assert.deepEqual(await receiver.datagrams(4), ['trusted', 'a×1000', 'a×1000', 'a×1000']);
    } finally {
      receiver.child.kill('SIGKILL');
    }
  });

  test('offload and header-size requests the kernel or the tap refuses are clear errors', async () => {
    assert.throws(() => tap.setOffload({ tso4: true }), /setting offloads \{"tso4":true\}: Invalid argument/);
    assert.throws(() => tap.setVnetHeaderLength(11 as 10), /10 or 12 bytes, not 11/);
    const plain = TapBackend.open(GuestNamespace.interfaceName());
    try {
      assert.equal(plain.vnetHeaderLength, 0);
      assert.throws(() => plain.setOffload({ csum: true }), /offloads need vnet_hdr=on/);
      assert.throws(() => plain.setVnetHeaderLength(12), /needs vnet_hdr=on/);
    } finally {
      await plain.close();
    }
  });
});

/** A UDP receiver on 10.0.2.15:7777 in the namespace, printing each datagram (runs of one byte as "c×N"). */
function spawnReceiver(ns: string): { child: ChildProcess; ready: Promise<void>; datagrams: (n: number) => Promise<string[]> } {
  const script = `
    const s = require('node:dgram').createSocket('udp4');
    s.on('message', (m) => {
      const t = m.toString();
      console.log(m.length > 8 && t === t[0].repeat(m.length) ? t[0] + '×' + m.length : t);
    });
    s.bind(7777, '${GUEST}', () => console.log('ready'));`;
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let waiter: (() => void) | null = null;
  let pending = '';
  child.stdout!.on('data', (d: Buffer) => {
    pending += d.toString();
    const parts = pending.split('\n');
    pending = parts.pop()!;
    lines.push(...parts);
    waiter?.();
  });
  const until = async (done: () => boolean, what: string): Promise<void> => {
    const deadline = Date.now() + 30_000;
    while (!done()) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the receiver: ${what}; it printed ${JSON.stringify(lines)}`);
      await new Promise<void>((resolve) => {
        waiter = resolve;
        setTimeout(resolve, 100);
      });
    }
  };
  return {
    child,
    ready: until(() => lines.includes('ready'), 'never bound its socket'),
    datagrams: async (n) => {
      await until(() => lines.length >= n + 1, `got fewer than ${n} datagrams`);
      return lines.filter((l) => l !== 'ready');
    },
  };
}
