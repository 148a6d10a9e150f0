/**
 * The user stack against a synthetic guest: checksums, ARP, IPv4 validation, ICMP
 * echo, DHCP, DNS, and malformed input (IPv4 and IPv6). Host sockets are only on
 * 127.0.0.1 and ::1.
 */
import { after, test } from 'node:test';
import { connect } from 'node:net';
import assert from 'node:assert/strict';
import { finish, sum, pseudoHeader } from '../../src/net/user/checksum.js';
import { PROTO_ICMP, PROTO_ICMPV6, PROTO_UDP } from '../../src/net/user/packet.js';
import { parseIpv6 } from '../../src/net/user/ip-address.js';
import { fragmentIpv6 } from '../../src/net/user/fragments.js';
import { ROUTER_MAC } from '../../src/net/user/stack.js';
import { answerDnsQuery } from '../../src/net/user/dns.js';
import { DNS_IP, Frame, GUEST_IP, GUEST_MAC, HOST_IP, SyntheticGuest } from './synthetic.js';
import { DNS6, echo6, GUEST6, GUEST_LL, HOST6, icmp6, isIpv6, neighborSolicitation, overIpv6, withExtensionHeaders } from './user-ipv6-guest.js';

const guests: SyntheticGuest[] = [];
after(async () => {
  for (const g of guests) await g.close();
});
async function guest(spec?: string): Promise<SyntheticGuest> {
  const g = await SyntheticGuest.create(spec);
  guests.push(g);
  return g;
}

test('the Internet checksum matches RFC 1071\'s example and verifies to zero', () => {
  const bytes = Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7);
  assert.equal(finish(sum(bytes, 0, 8)), 0x220d);
  const withSum = Uint8Array.of(...bytes, 0x22, 0x0d);
  assert.equal(finish(sum(withSum, 0, 10)), 0);
  assert.equal(finish(sum(Uint8Array.of(0xff), 0, 1)), 0x00ff); // odd length pads with zero
  assert.equal(pseudoHeader(0x0a00020f, 0x0a000202, 6, 20), 0x0a00 + 0x020f + 0x0a00 + 0x0202 + 6 + 20);
});

function arpRequest(target: number): Uint8Array {
  const f = new Uint8Array(42);
  const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
  f.fill(0xff, 0, 6);
  f.set(GUEST_MAC, 6);
  v.setUint16(12, 0x0806);
  v.setUint32(14, 0x00010800);
  v.setUint16(18, 0x0604);
  v.setUint16(20, 1);
  f.set(GUEST_MAC, 22);
  v.setUint32(28, GUEST_IP);
  v.setUint32(38, target);
  return f;
}

test('ARP: the host and DNS addresses are answered with the router MAC, others not', async () => {
  const g = await guest();
  g.send(arpRequest(HOST_IP));
  g.send(arpRequest(DNS_IP));
  g.send(arpRequest(0x0a000263));
  assert.equal(g.received.length, 2);
  for (const [i, ip] of [HOST_IP, DNS_IP].entries()) {
    const r = new Frame(g.received[i]!);
    assert.equal(r.ethertype, 0x0806);
    assert.equal(r.view.getUint16(20), 2);
    assert.deepEqual(r.bytes.subarray(22, 28), ROUTER_MAC);
    assert.equal(r.view.getUint32(28), ip);
    assert.deepEqual(r.bytes.subarray(0, 6), GUEST_MAC);
  }
});

function echoRequest(g: SyntheticGuest, dst: number, payload = 'abcdefgh'): Uint8Array {
  return g.ipv4(PROTO_ICMP, dst, 8 + payload.length, (v, at) => {
    v.setUint8(at, 8);
    v.setUint16(at + 4, 0x1234);
    v.setUint16(at + 6, 7);
    new Uint8Array(v.buffer, v.byteOffset, v.byteLength).set(Buffer.from(payload), at + 8);
  });
}

test('ICMP echo to the router is answered with valid checksums; malformed IPv4 is dropped', async () => {
  const g = await guest();
  g.send(echoRequest(g, HOST_IP));
  const reply = await g.next((f) => f.protocol === PROTO_ICMP, 'echo reply');
  assert.equal(reply.src, HOST_IP);
  assert.equal(reply.dst, GUEST_IP);
  assert.equal(reply.view.getUint8(reply.l4), 0);
  assert.equal(reply.view.getUint16(reply.l4 + 4), 0x1234);
  assert.equal(finish(sum(reply.bytes, 14, 20)), 0, 'IP header checksum');
  assert.equal(finish(sum(reply.bytes, reply.l4, reply.bytes.length - reply.l4)), 0, 'ICMP checksum');
  assert.equal(Buffer.from(reply.bytes.subarray(reply.l4 + 8)).toString(), 'abcdefgh');

  const good = echoRequest(g, HOST_IP);
  const mutations: [string, (f: Uint8Array, v: DataView) => Uint8Array][] = [
    ['bad header checksum', (f, v) => (v.setUint16(24, v.getUint16(24) ^ 1), f)],
    ['bad ICMP checksum', (f) => ((f[f.length - 1]! ^= 0xff), f)],
    ['truncated', (f) => f.subarray(0, 30)],
    ['total length past the frame', (f, v) => (v.setUint16(16, 200), f)],
    ['version 5', (f, v) => (v.setUint8(14, 0x55), f)],
    ['header length 4 words', (f, v) => (v.setUint8(14, 0x44), f)],
    ['a fragment', (f, v) => (v.setUint16(20, 0x2000), f)],
    ['to another address', (f, v) => (v.setUint32(30, 0x0a000209), f)],
  ];
  for (const [, mutate] of mutations) {
    const copy = good.slice();
    g.send(mutate(copy, new DataView(copy.buffer, copy.byteOffset, copy.byteLength)));
  }
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(g.received.length, 0, 'no reply to a malformed packet');
});

function dhcpMessage(type: number, mac: Uint8Array, requested?: number): Uint8Array {
  const m = new Uint8Array(300);
  const v = new DataView(m.buffer, m.byteOffset, m.byteLength);
  m[0] = 1; m[1] = 1; m[2] = 6;
  v.setUint32(4, 0xdeadbeef);
  m.set(mac, 28);
  v.setUint32(236, 0x63825363);
  let i = 240;
  m[i++] = 53; m[i++] = 1; m[i++] = type;
  if (requested !== undefined) { m[i++] = 50; m[i++] = 4; v.setUint32(i, requested); i += 4; }
  m[i] = 255;
  return m;
}

function dhcpReply(f: Frame): { type: number; yiaddr: number; options: Map<number, Uint8Array> } {
  const p = f.udpPayload;
  const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const options = new Map<number, Uint8Array>();
  for (let i = 240; p[i] !== 255; i += 2 + p[i + 1]!) options.set(p[i]!, p.subarray(i + 2, i + 2 + p[i + 1]!));
  return { type: options.get(53)![0]!, yiaddr: v.getUint32(16), options };
}

test('DHCP: 10.0.2.15 first, the next client .16, router/DNS/mask/lease, NAK for a foreign address', async () => {
  const g = await guest('user,domainname=example.test');
  const isDhcp = (f: Frame): boolean => f.protocol === PROTO_UDP && f.dstPort === 68;
  g.send(g.udp(0xffffffff, 68, 67, dhcpMessage(1, GUEST_MAC)).slice());
  const offer = dhcpReply(await g.next(isDhcp, 'offer'));
  assert.equal(offer.type, 2);
  assert.equal(offer.yiaddr, GUEST_IP);
  assert.deepEqual([...offer.options.get(3)!], [10, 0, 2, 2]);
  assert.deepEqual([...offer.options.get(6)!], [10, 0, 2, 3]);
  assert.deepEqual([...offer.options.get(1)!], [255, 255, 255, 0]);
  assert.equal(Buffer.from(offer.options.get(15)!).toString(), 'example.test');
  assert.equal(new DataView(offer.options.get(51)!.buffer, offer.options.get(51)!.byteOffset).getUint32(0), 86400);
  g.send(g.udp(0xffffffff, 68, 67, dhcpMessage(3, GUEST_MAC, GUEST_IP)));
  assert.equal(dhcpReply(await g.next(isDhcp, 'ack')).type, 5);
  const other = Uint8Array.of(2, 0, 0, 0, 0, 1);
  g.send(g.udp(0xffffffff, 68, 67, dhcpMessage(1, other)));
  assert.equal(dhcpReply(await g.next(isDhcp, 'second offer')).yiaddr, GUEST_IP + 1);
  g.send(g.udp(0xffffffff, 68, 67, dhcpMessage(3, other, 0x0a000263)));
  assert.equal(dhcpReply(await g.next(isDhcp, 'nak')).type, 6);
  // Malformed: short, bad cookie, an option running past the end.
  const bad = dhcpMessage(1, GUEST_MAC);
  bad[241] = 200;
  for (const m of [dhcpMessage(1, GUEST_MAC).subarray(0, 200), bad]) g.send(g.udp(0xffffffff, 68, 67, m));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(g.received.filter((f) => isDhcp(new Frame(f))).length, 0);
});

function dnsQuery(name: string, type: number): Uint8Array {
  const labels = name.split('.').flatMap((l) => [l.length, ...Buffer.from(l)]);
  return Uint8Array.of(0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, ...labels, 0, type >> 8, type & 255, 0, 1);
}

test('DNS: localhost from /etc/hosts answers as the host address; malformed queries get FORMERR', async () => {
  const answer = (await answerDnsQuery(dnsQuery('localhost', 1), HOST_IP))!;
  const v = new DataView(answer.buffer, answer.byteOffset);
  assert.equal(v.getUint16(0), 0x1234);
  assert.equal(answer[3]! & 15, 0);
  assert.ok(v.getUint16(6) >= 1);
  assert.equal(v.getUint32(answer.length - 4), HOST_IP);
  const mx = (await answerDnsQuery(dnsQuery('localhost', 15), HOST_IP))!;
  assert.equal(new DataView(mx.buffer, mx.byteOffset).getUint16(6), 0);
  const truncated = (await answerDnsQuery(dnsQuery('localhost', 1).subarray(0, 16), HOST_IP))!;
  assert.equal(truncated[3]! & 15, 1);
  assert.equal(await answerDnsQuery(Uint8Array.of(1, 2, 3), HOST_IP), null);

  const g = await guest();
  g.send(g.udp(DNS_IP, 5353, 53, dnsQuery('localhost', 1)));
  const reply = await g.next((f) => f.protocol === PROTO_UDP && f.srcPort === 53, 'DNS answer');
  assert.equal(reply.src, DNS_IP);
  assert.equal(reply.dstPort, 5353);
});

/**
 * Sends 20,000 frames made from the templates: each a template picked at random,
 * truncated one time in four, with up to 5 random bytes overwritten, then passed
 * through `fix` (the same seed gives the same frames).
 */
function sendMutated(g: SyntheticGuest, templates: Uint8Array[], seed: number, fix: (f: Uint8Array, base: Uint8Array) => void = () => {}): void {
  let state = seed;
  const rand = (n: number): number => {
    state = (state * 1103515245 + 12345) >>> 0;
    return state % n;
  };
  for (let n = 0; n < 20_000; n++) {
    const base = templates[rand(templates.length)]!;
    const f = base.slice(0, Math.max(1, base.length - (rand(4) === 0 ? rand(base.length) : 0)));
    for (let k = rand(6); k > 0; k--) f[rand(f.length)] = rand(256);
    fix(f, base);
    g.send(f);
  }
}

test('fuzz: 20,000 random and mutated frames never throw and the stack keeps answering', async () => {
  const g = await guest();
  const templates = [
    echoRequest(g, HOST_IP),
    g.udp(0xffffffff, 68, 67, dhcpMessage(1, GUEST_MAC)),
    g.udp(DNS_IP, 5353, 53, dnsQuery('localhost', 1)),
    g.tcp(HOST_IP, 40000, 9, 1, 0, 0x02, 65535, new Uint8Array(0), Uint8Array.of(2, 4, 5, 180, 3, 3, 7, 0)),
    arpRequest(HOST_IP),
  ];
  sendMutated(g, templates, 12345);
  await new Promise((r) => setTimeout(r, 100));
  g.received.length = 0;
  g.send(echoRequest(g, HOST_IP));
  await g.next((f) => f.protocol === PROTO_ICMP, 'echo reply after the fuzz');
});

test('a host forward to a guest not heard from yet asks ARP first, then sends its SYN to the answer', async () => {
  const g = await guest('user,hostfwd=tcp:127.0.0.1:0-:22');
  const socket = connect({ host: '127.0.0.1', port: g.stack.forwards[0]!.port });
  socket.on('error', () => {});
  try {
    const request = await g.next((f) => f.ethertype === 0x0806, 'ARP request');
    assert.equal(request.view.getUint16(20), 1);
    assert.equal(request.view.getUint32(38), GUEST_IP);
    assert.deepEqual(request.bytes.subarray(0, 6), Uint8Array.of(255, 255, 255, 255, 255, 255));
    const answer = arpRequest(HOST_IP);
    new DataView(answer.buffer, answer.byteOffset, answer.byteLength).setUint16(20, 2);
    g.send(answer);
    const syn = await g.next((f) => f.isTcp(0x02), 'SYN to the guest');
    assert.deepEqual(syn.bytes.subarray(0, 6), GUEST_MAC);
    assert.equal(syn.dst, GUEST_IP);
    assert.equal(syn.src, HOST_IP);
    assert.equal(syn.dstPort, 22);
  } finally {
    socket.destroy();
  }
});

test('host forwards can be added and removed at run time', async () => {
  const g = await guest();
  const added = await g.stack.addHostForward({ proto: 'tcp', hostAddr: '127.0.0.1', hostPort: 0, guestAddr: null, guestPort: 80 });
  const udp = await g.stack.addHostForward({ proto: 'udp', hostAddr: '127.0.0.1', hostPort: 0, guestAddr: null, guestPort: 53 });
  assert.equal(g.stack.forwards.length, 2);
  assert.ok(added.port > 0 && udp.port > 0);
  assert.equal(g.stack.removeHostForward('tcp', '127.0.0.1', added.port), true);
  assert.equal(g.stack.removeHostForward('tcp', '127.0.0.1', added.port), false);
  assert.equal(g.stack.removeHostForward('udp', '127.0.0.1', udp.port), true);
  assert.equal(g.stack.forwards.length, 0);
  const refused = await new Promise<string>((resolve) => {
    const s = connect({ host: '127.0.0.1', port: added.port });
    s.on('connect', () => { s.destroy(); resolve('connected'); });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
  assert.equal(refused, 'ECONNREFUSED');
  await assert.rejects(g.stack.addHostForward({ proto: 'tcp', hostAddr: '127.0.0.1', hostPort: udp.port, guestAddr: null, guestPort: 1 }).then(
    () => g.stack.addHostForward({ proto: 'tcp', hostAddr: '127.0.0.1', hostPort: g.stack.forwards[0]!.port, guestAddr: null, guestPort: 1 }),
  ), /hostfwd: cannot listen on 127\.0\.0\.1:\d+/);
});

test('DNS: a burst of 200 queries is answered (lookups queued) or refused with SERVFAIL, never dropped silently', async () => {
  const answers = await Promise.all(Array.from({ length: 200 }, () => answerDnsQuery(dnsQuery('localhost', 1), HOST_IP)));
  const codes = answers.map((a) => a![3]! & 15);
  assert.ok(codes.every((c) => c === 0 || c === 2));
  assert.ok(codes.filter((c) => c === 0).length >= 66, 'at least the running and waiting lookups are answered');
  assert.equal((await answerDnsQuery(dnsQuery('localhost', 1), HOST_IP))![3]! & 15, 0, 'the limiter recovers');
});

test('TTL: a packet that would be passed on with TTL 1 gets ICMP time exceeded, quoting its header', async () => {
  const g = await guest();
  const frame = g.udp(0xc0000201, 33434, 33434, Buffer.from('probe'));
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  v.setUint8(22, 1);
  v.setUint16(24, 0);
  v.setUint16(24, finish(sum(frame, 14, 20)));
  g.send(frame);
  const reply = await g.next((f) => f.protocol === PROTO_ICMP, 'time exceeded');
  assert.equal(reply.view.getUint8(reply.l4), 11);
  assert.equal(reply.src, HOST_IP);
  assert.deepEqual(reply.bytes.subarray(reply.l4 + 8, reply.l4 + 36), frame.subarray(14, 42));
  assert.equal(finish(sum(reply.bytes, reply.l4, reply.bytes.length - reply.l4)), 0);
  assert.equal(g.stack.stats.udpFlows, 0, 'nothing was sent on');
});

test('fuzz: 20,000 random and mutated IPv6 frames never throw and the stack keeps answering (destinations kept on the router)', async () => {
  const g = await guest();
  const pad = [1, 4, 0, 0, 0, 0];
  const templates = [
    echo6(HOST6),
    neighborSolicitation(HOST6),
    neighborSolicitation(GUEST6, new Uint8Array(16)),
    icmp6(133, GUEST_LL, parseIpv6('ff02::2'), Uint8Array.of(0, 0, 0, 0, 1, 1, ...GUEST_MAC)),
    overIpv6(g.udp(0, 5353, 53, dnsQuery('localhost', 28)), DNS6),
    overIpv6(g.tcp(0, 40000, 9, 1, 0, 0x02, 65535, new Uint8Array(0), Uint8Array.of(2, 4, 5, 160, 3, 3, 7, 0)), HOST6),
    withExtensionHeaders(echo6(HOST6), [[0, pad], [60, pad], [43, [0, 0, 0, 0, 0, 0]]]),
    ...fragmentIpv6(icmp6(128, GUEST6, HOST6, new Uint8Array(3000)), 1500, 5),
    overIpv6(g.udp(0, 546, 547, Uint8Array.of(11, 1, 2, 3, 0, 6, 0, 4, 0, 23, 0, 24)), parseIpv6('ff02::1:2'), GUEST_LL, 1),
  ];
  // The destination is put back, so NAT reaches only the host's ::1.
  sendMutated(g, templates, 54321, (f, base) => f.length >= 54 && f.set(base.subarray(38, 54), 38));
  await new Promise((r) => setTimeout(r, 100));
  g.received.length = 0;
  g.send(echo6(HOST6));
  await g.next((f) => isIpv6(f, PROTO_ICMPV6, 129), 'echo reply after the fuzz');
});
