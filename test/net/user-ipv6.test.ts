/**
 * The user stack's IPv6 side against a synthetic guest: addresses and options,
 * NDP both ways, router advertisements, stateless DHCPv6, ICMPv6 echo, UDP and TCP
 * NAT to the host's ::1, IPv6 host forwards, hop limits, extension headers,
 * fragments, restrict=on, ipv4=off and ipv6=off. Host sockets are only on ::1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { parseHostForward, parseNetdevSpec } from '../../src/net/spec.js';
import { fragmentIpv6, Reassembler } from '../../src/net/user/fragments.js';
import { formatIpv6, parseIpv6, tryParseIpv6 } from '../../src/net/user/ip-address.js';
import { readIpv6 } from '../../src/net/user/ipv6.js';
import { answerDnsQuery } from '../../src/net/user/dns.js';
import { PROTO_ICMPV6, PROTO_TCP, PROTO_UDP } from '../../src/net/user/packet.js';
import { ROUTER_MAC } from '../../src/net/user/stack.js';
import { GUEST_MAC, type SyntheticGuest } from './synthetic.js';
import {
  ALL_NODES_MAC, DNS6, echo6, Frame6, GUEST6, GUEST_LL, guestFactory, HOST6, icmp6, isIpv6, neighborSolicitation, overIpv6, ROUTER_LL,
  withExtensionHeaders,
} from './user-ipv6-guest.js';

const UNSPECIFIED = new Uint8Array(16);
const guest = guestFactory();
const udp6 = (g: SyntheticGuest, dst: Uint8Array, srcPort: number, dstPort: number, payload: Uint8Array, hopLimit = 64, src = GUEST6): Uint8Array =>
  overIpv6(g.udp(0, srcPort, dstPort, payload), dst, src, hopLimit);
const tcp6 = (g: SyntheticGuest, dst: Uint8Array, srcPort: number, dstPort: number, seq: number, ack: number, flags: number, options?: Uint8Array): Uint8Array =>
  overIpv6(g.tcp(0, srcPort, dstPort, seq, ack, flags, 65535, new Uint8Array(0), options), dst);

const text = (a: Uint8Array): string => formatIpv6(a);
const settle = (): Promise<unknown> => new Promise((r) => setTimeout(r, 50));
const ipv6Frames = (g: SyntheticGuest): Frame6[] => g.received.map((b) => new Frame6(b)).filter((f) => f.isIpv6);

/** The NDP options of an RA or NA as [type, body] pairs. */
function ndpOptions(f: Frame6, fixed: number): [number, Uint8Array][] {
  const out: [number, Uint8Array][] = [];
  for (let at = f.l4 + fixed; at < f.l4 + f.payloadLength; at += f.bytes[at + 1]! * 8) out.push([f.bytes[at]!, f.bytes.subarray(at + 2, at + f.bytes[at + 1]! * 8)]);
  return out;
}

test('IPv6 text: every RFC 4291 form parses, RFC 5952 form comes out, junk is refused', () => {
  const cases: [string, string][] = [
    ['::', '::'], ['::1', '::1'], ['FEC0:0:0:0:0:0:0:2', 'fec0::2'], ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'], ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'], ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::ffff:10.0.2.2', '::ffff:a00:202'],
  ];
  for (const [input, output] of cases) assert.equal(formatIpv6(parseIpv6(input)), output, input);
  for (const bad of ['', ':::', '1::2::3', '1:2:3:4:5:6:7:8:9', '12345::', 'g::', '1.2.3.4', '::1.2.3.256', 'fec0::/64', '[::1]']) {
    assert.equal(tryParseIpv6(bad), null, bad);
  }
});

test('options: ipv6 on by default with QEMU\'s fec0::/64, ::2 and ::3; ipv6-net, ipv6-prefix and -prefixlen, host, dns, off', () => {
  const spec = parseNetdevSpec('user');
  assert.ok(spec.type === 'user' && spec.ipv6);
  assert.deepEqual([text(spec.ipv6.prefix), spec.ipv6.prefixLength, text(spec.ipv6.host), text(spec.ipv6.dns)], ['fec0::', 64, 'fec0::2', 'fec0::3']);
  const net = parseNetdevSpec('user,ipv6-net=fd00:1:2:3:4::/48,ipv6-dns=fd00:1:2::53');
  assert.ok(net.type === 'user' && net.ipv6);
  assert.deepEqual([text(net.ipv6.prefix), net.ipv6.prefixLength, text(net.ipv6.host), text(net.ipv6.dns)], ['fd00:1:2::', 48, 'fd00:1:2::2', 'fd00:1:2::53']);
  const split = parseNetdevSpec('user,ipv6-prefix=fd00:9::,ipv6-prefixlen=64,ipv6-host=fd00:9::1');
  assert.ok(split.type === 'user' && split.ipv6);
  assert.deepEqual([text(split.ipv6.prefix), text(split.ipv6.host)], ['fd00:9::', 'fd00:9::1']);
  const off = parseNetdevSpec('user,ipv6=off');
  assert.ok(off.type === 'user' && off.ipv6 === null && off.ipv4);
  const only6 = parseNetdevSpec('user,ipv4=off');
  assert.ok(only6.type === 'user' && only6.ipv6 && !only6.ipv4);
  const bad: [string, RegExp][] = [
    ['user,ipv6=maybe', /ipv6: 'maybe' is not on or off/],
    ['user,ipv4=off,ipv6=off', /leave the guest no network/],
    ['user,ipv6-net=fd00::/64,ipv6-prefix=fd00::', /not both/],
    ['user,ipv6-net=fd00::/127', /ipv6-net: '127' is not a prefix length/],
    ['user,ipv6-prefixlen=0', /ipv6-prefixlen: '0' is not a prefix length/],
    ['user,ipv6-net=ff02::/64', /multicast or link-local/],
    ['user,ipv6-prefix=10.0.2.0', /ipv6-prefix: '10\.0\.2\.0' is not an IPv6 address/],
    ['user,ipv6-host=fd00::2', /ipv6-host: fd00::2 is outside the prefix fec0::\/64/],
    ['user,ipv6-dns=zz::', /ipv6-dns: 'zz::' is not an IPv6 address/],
  ];
  for (const [s, message] of bad) assert.throws(() => parseNetdevSpec(s), message, s);
});

test('hostfwd with bracketed IPv6 addresses (QEMU 7.2 syntax)', () => {
  const both = parseHostForward('tcp:[::1]:2222-[fec0::15]:22');
  assert.equal(both.hostAddr, '::1');
  assert.equal(both.guestAddr, null);
  assert.equal(text(both.guestAddr6!), 'fec0::15');
  assert.equal(parseHostForward('tcp:[::1]:2222-:22').guestAddr6, null, 'the guest\'s own IPv6 address');
  assert.equal(parseHostForward('udp:[::]:53-:53').hostAddr, '::');
  assert.equal(text(parseHostForward('tcp:127.0.0.1:80-[fec0::15]:80').guestAddr6!), 'fec0::15');
  assert.equal(parseHostForward('tcp:127.0.0.1:80-:80').guestAddr6, undefined, 'IPv4 forwards stay IPv4');
  assert.throws(() => parseHostForward('tcp:[::1:2222-:22'), /is not \[tcp\|udp\]/);
  assert.throws(() => parseHostForward('tcp:[1.2.3.4]:1-:2'), /host address: '1\.2\.3\.4' is not an IPv6 address/);
  assert.throws(() => parseHostForward('tcp::1-[10.0.2.15]:2'), /guest address: '10\.0\.2\.15' is not an IPv6 address/);
});

test('NDP: solicitations for fe80::2, fec0::2 and fec0::3 get neighbor advertisements of the router MAC; others and bad ones nothing', async () => {
  const g = await guest();
  for (const target of [ROUTER_LL, HOST6, DNS6]) {
    g.send(neighborSolicitation(target));
    const na = Frame6.of(await g.next((f) => isIpv6(f, PROTO_ICMPV6, 136), `advertisement for ${text(target)}`));
    assert.deepEqual(na.bytes.subarray(0, 6), GUEST_MAC);
    assert.deepEqual(na.bytes.subarray(6, 12), ROUTER_MAC);
    assert.equal(text(na.dst), text(GUEST_LL));
    assert.equal(text(na.src), text(target));
    assert.equal(na.hopLimit, 255);
    assert.equal(na.view.getUint32(na.l4 + 4), 0xe0000000, 'router, solicited, override');
    assert.equal(text(na.bytes.subarray(na.l4 + 8, na.l4 + 24)), text(target));
    assert.deepEqual(ndpOptions(na, 24), [[2, ROUTER_MAC]]);
    assert.ok(na.checksumOk);
  }
  g.send(neighborSolicitation(parseIpv6('fec0::99')));
  g.send(neighborSolicitation(HOST6, GUEST_LL, 64)); // not hop limit 255: not NDP
  // A router advertisement from the guest with a solicitation's body (target fec0::2): not a solicitation.
  g.send(icmp6(134, GUEST_LL, parseIpv6('ff02::1'), neighborSolicitation(HOST6).subarray(58)));
  const badChecksum = neighborSolicitation(HOST6);
  badChecksum[badChecksum.length - 1]! ^= 1;
  g.send(badChecksum);
  await settle();
  assert.deepEqual(ipv6Frames(g), []);
  // Duplicate address detection of the router's address is defended to all nodes.
  g.send(neighborSolicitation(HOST6, UNSPECIFIED));
  const defended = Frame6.of(await g.next((f) => isIpv6(f, PROTO_ICMPV6, 136), 'defending advertisement'));
  assert.deepEqual(defended.bytes.subarray(0, 6), ALL_NODES_MAC);
  assert.equal(text(defended.dst), 'ff02::1');
  assert.equal(defended.view.getUint32(defended.l4 + 4), 0xa0000000, 'router, override, not solicited');
});

test('router solicitation → advertisement from fe80::2 to all nodes: prefix for SLAAC, MTU, router MAC, RDNSS', async () => {
  const g = await guest('user,ipv6-net=fd00:1:2:3::/64,ipv6-dns=fd00:1:2:3::53');
  g.send(icmp6(133, GUEST_LL, parseIpv6('ff02::2'), Uint8Array.of(0, 0, 0, 0, 1, 1, ...GUEST_MAC)));
  const ra = Frame6.of(await g.next((f) => isIpv6(f, PROTO_ICMPV6, 134), 'router advertisement'));
  assert.deepEqual(ra.bytes.subarray(0, 6), ALL_NODES_MAC);
  assert.equal(text(ra.src), 'fe80::2');
  assert.equal(text(ra.dst), 'ff02::1');
  assert.equal(ra.hopLimit, 255);
  assert.ok(ra.checksumOk);
  assert.equal(ra.bytes[ra.l4 + 4], 64, 'hop limit for guests');
  assert.equal(ra.bytes[ra.l4 + 5], 0x40, 'other configuration by DHCPv6, addresses by SLAAC');
  assert.equal(ra.view.getUint16(ra.l4 + 6), 1800, 'router lifetime');
  const options = new Map(ndpOptions(ra, 16));
  assert.deepEqual(options.get(1), ROUTER_MAC);
  assert.equal(new DataView(options.get(5)!.buffer, options.get(5)!.byteOffset).getUint32(2), 1500);
  const prefix = options.get(3)!;
  assert.equal(prefix[0], 64);
  assert.equal(prefix[1], 0xc0, 'on-link, autonomous');
  assert.equal(text(prefix.subarray(14, 30)), 'fd00:1:2:3::');
  assert.equal(text(options.get(25)!.subarray(6, 22)), 'fd00:1:2:3::53');
  // A flood of solicitations gets one answer per 500 ms.
  for (let n = 0; n < 20; n++) g.send(icmp6(133, GUEST_LL, parseIpv6('ff02::2'), Uint8Array.of(0, 0, 0, 0)));
  await settle();
  assert.equal(ipv6Frames(g).length, 0);
});

test('ICMPv6 echo to fec0::2, fec0::3 and fe80::2 is answered from the address pinged; a bad checksum is not', async () => {
  const g = await guest();
  for (const [dst, src] of [[HOST6, GUEST6], [DNS6, GUEST6], [ROUTER_LL, GUEST_LL]] as const) {
    g.send(echo6(dst, 0xbeef, 7, src));
    const reply = Frame6.of(await g.next((f) => isIpv6(f, PROTO_ICMPV6, 129), 'echo reply'));
    assert.equal(text(reply.src), text(dst));
    assert.equal(text(reply.dst), text(src));
    assert.deepEqual(reply.bytes.subarray(0, 6), GUEST_MAC);
    assert.equal(reply.view.getUint32(reply.l4 + 4), (0xbeef << 16 | 7) >>> 0);
    assert.equal(Buffer.from(reply.bytes.subarray(reply.l4 + 8)).toString(), 'ping six');
    assert.ok(reply.checksumOk);
  }
  const bad = echo6(HOST6);
  bad[bad.length - 1]! ^= 0xff;
  g.send(bad);
  await settle();
  assert.deepEqual(ipv6Frames(g), []);
});

test('UDP to [fec0::2] reaches a host socket on ::1 and comes back; a zero UDP checksum (invalid over IPv6) is dropped', async () => {
  const g = await guest();
  const echo = createSocket('udp6');
  echo.on('message', (msg, from) => echo.send(Buffer.concat([Buffer.from('echo:'), msg]), from.port, from.address));
  await new Promise<void>((resolve) => echo.bind(0, '::1', resolve));
  try {
    const port = echo.address().port;
    g.send(udp6(g, HOST6, 40000, port, Buffer.from('hello')));
    const reply = Frame6.of(await g.next((f) => isIpv6(f, PROTO_UDP), 'UDP reply'));
    assert.equal(text(reply.src), 'fec0::2');
    assert.equal(reply.srcPort, port);
    assert.equal(reply.dstPort, 40000);
    assert.equal(Buffer.from(reply.udpPayload).toString(), 'echo:hello');
    assert.ok(reply.checksumOk);
    const zero = udp6(g, HOST6, 40001, port, Buffer.from('no checksum'));
    new DataView(zero.buffer, zero.byteOffset, zero.byteLength).setUint16(54 + 6, 0);
    g.send(zero);
    await settle();
    assert.equal(g.stack.stats.udpFlows, 1);
  } finally {
    echo.close();
  }
});

test('NAT refuses the prefix\'s other addresses, link-local, loopback and IPv4-embedding destinations', async () => {
  const g = await guest();
  for (const dst of ['fec0::99', 'fe80::1234', '::1', '::ffff:127.0.0.1', '::127.0.0.1', '::']) g.send(udp6(g, parseIpv6(dst), 40000, 7, Buffer.from('x')));
  g.send(udp6(g, parseIpv6('ff05::2'), 40000, 7, Buffer.from('multicast')));
  await settle();
  assert.equal(g.stack.stats.udpFlows, 0);
});

test('TCP to [fec0::2] reaches a server on ::1 with a 1440-byte MSS; a closed port is reset', async () => {
  const g = await guest();
  const accepted: Socket[] = [];
  const server = createServer((s) => {
    accepted.push(s);
    s.on('error', () => {}); // the guest's RST resets it
    s.end('hi over six');
  });
  await new Promise<void>((resolve) => server.listen(0, '::1', resolve));
  const port = (server.address() as AddressInfo).port;
  try {
    g.send(tcp6(g, HOST6, 40000, port, 1000, 0, 0x02, Uint8Array.of(2, 4, 0x05, 0xb4)));
    const synAck = Frame6.of(await g.next((f) => isIpv6(f, PROTO_TCP) && Frame6.of(f).tcpFlags === 0x12, 'SYN-ACK'));
    assert.equal(text(synAck.src), 'fec0::2');
    assert.equal(synAck.view.getUint32(synAck.l4 + 8), 1001);
    assert.equal(synAck.bytes[synAck.l4 + 20], 2);
    assert.equal(synAck.view.getUint16(synAck.l4 + 22), 1440, 'MSS for IPv6');
    assert.ok(synAck.checksumOk);
    const ourSeq = (synAck.view.getUint32(synAck.l4 + 4) + 1) >>> 0;
    g.send(tcp6(g, HOST6, 40000, port, 1001, ourSeq, 0x10));
    const dataOffset = (f: Frame6): number => f.l4 + (f.bytes[f.l4 + 12]! >> 4) * 4;
    const data = Frame6.of(await g.next((f) => isIpv6(f, PROTO_TCP) && dataOffset(Frame6.of(f)) < 54 + Frame6.of(f).payloadLength, 'data'));
    const offset = dataOffset(data);
    assert.equal(Buffer.from(data.bytes.subarray(offset, 54 + data.payloadLength)).toString(), 'hi over six');
    assert.ok(data.checksumOk);
    g.send(tcp6(g, HOST6, 40000, port, 1001, ourSeq, 0x04));
    server.close();
    g.send(tcp6(g, HOST6, 40001, port, 5000, 0, 0x02));
    const rst = Frame6.of(await g.next((f) => isIpv6(f, PROTO_TCP) && (Frame6.of(f).tcpFlags & 0x04) !== 0, 'RST for a closed port'));
    assert.equal(rst.view.getUint32(rst.l4 + 8), 5001);
  } finally {
    for (const s of accepted) s.destroy();
    server.close();
  }
});

test('an IPv6 host forward waits for the guest\'s address, solicits its MAC, then sends the SYN from fec0::2', async () => {
  const g = await guest('user,hostfwd=tcp:[::1]:0-:22');
  const { address, port } = g.stack.forwards[0]!;
  assert.equal(address, '::1');
  const early = await new Promise<string>((resolve) => {
    const s = connect({ host: '::1', port });
    s.on('error', () => resolve('error'));
    s.on('close', () => resolve('closed'));
    s.resume();
  });
  assert.equal(early, 'closed', 'no guest address yet: the host connection is closed');
  g.send(neighborSolicitation(GUEST6, UNSPECIFIED)); // duplicate address detection tells the guest's address
  const socket = connect({ host: '::1', port });
  socket.on('error', () => {});
  try {
    const ns = Frame6.of(await g.next((f) => isIpv6(f, PROTO_ICMPV6, 135), 'neighbor solicitation'));
    assert.equal(text(ns.dst), 'ff02::1:ff12:3456');
    assert.deepEqual(ns.bytes.subarray(0, 6), Uint8Array.of(0x33, 0x33, 0xff, 0x12, 0x34, 0x56));
    assert.equal(text(ns.src), 'fec0::2');
    assert.equal(text(ns.bytes.subarray(ns.l4 + 8, ns.l4 + 24)), text(GUEST6));
    assert.ok(ns.checksumOk);
    g.send(icmp6(136, GUEST6, HOST6, Uint8Array.of(0x60, 0, 0, 0, ...GUEST6, 2, 1, ...GUEST_MAC)));
    const syn = Frame6.of(await g.next((f) => isIpv6(f, PROTO_TCP), 'SYN into the guest'));
    assert.equal(syn.tcpFlags, 0x02);
    assert.deepEqual(syn.bytes.subarray(0, 6), GUEST_MAC);
    assert.equal(text(syn.src), 'fec0::2');
    assert.equal(text(syn.dst), text(GUEST6));
    assert.equal(syn.dstPort, 22);
  } finally {
    socket.destroy();
  }
  assert.equal(g.stack.removeHostForward('tcp', '0:0::1', port), true);
  const every = await g.stack.addHostForward(parseHostForward('tcp::0-:22'));
  assert.equal(g.stack.removeHostForward('tcp', '', every.port), true, 'an empty host address names the forward on every address');
});

test('a UDP host forward from [::1] reaches the guest\'s IPv6 address and the guest\'s reply comes back', async () => {
  const g = await guest(`user,hostfwd=udp:[::1]:0-[${text(GUEST6)}]:53`);
  const { port } = g.stack.forwards[0]!;
  const client = createSocket('udp6');
  await new Promise<void>((resolve) => client.bind(0, '::1', resolve));
  try {
    const answer = new Promise<string>((resolve) => client.once('message', (m) => resolve(String(m))));
    client.send('question', port, '::1');
    await g.next((f) => isIpv6(f, PROTO_ICMPV6, 135), 'neighbor solicitation for the guest');
    g.send(icmp6(136, GUEST6, HOST6, Uint8Array.of(0x60, 0, 0, 0, ...GUEST6, 2, 1, ...GUEST_MAC)));
    const datagram = Frame6.of(await g.next((f) => isIpv6(f, PROTO_UDP), 'forwarded datagram'));
    assert.equal(text(datagram.src), 'fec0::2');
    assert.equal(datagram.dstPort, 53);
    assert.equal(Buffer.from(datagram.udpPayload).toString(), 'question');
    assert.ok(datagram.checksumOk);
    g.send(udp6(g, HOST6, 53, datagram.srcPort, Buffer.from('answer')));
    assert.equal(await answer, 'answer');
  } finally {
    client.close();
  }
});

test('DNS at fec0::3: A over IPv6 gives the host address; an AAAA answer of the host\'s ::1 becomes fec0::2', async () => {
  const query = (name: string, type: number): Uint8Array => Uint8Array.of(0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0,
    ...name.split('.').flatMap((label) => [label.length, ...Buffer.from(label)]), 0, 0, type, 0, 1);
  const g = await guest();
  g.send(udp6(g, DNS6, 5353, 53, query('localhost', 1)));
  const a = Frame6.of(await g.next((f) => isIpv6(f, PROTO_UDP), 'A answer')).udpPayload;
  assert.equal(a[7], 1, 'one answer');
  assert.deepEqual([...a.subarray(a.length - 4)], [10, 0, 2, 2]);
  // getaddrinfo takes a literal as its own answer: "::1" stands for a name the host resolves to ::1.
  const mapped = (await answerDnsQuery(query('::1', 28), 0x0a000202, HOST6))!;
  assert.equal(text(mapped.subarray(mapped.length - 16)), 'fec0::2');
  const kept = (await answerDnsQuery(query('2001:db8::7', 28), 0x0a000202, HOST6))!;
  assert.equal(text(kept.subarray(kept.length - 16)), '2001:db8::7');
});

test('stateless DHCPv6: an information-request gets DNS, search list and boot file URL; solicit and other servers\' messages nothing', async () => {
  const g = await guest('user,dnssearch=lab.test,dnssearch=corp.lab.test,tftp=/srv,bootfile=boot.efi');
  const clientId = [0, 1, 0, 3, ...GUEST_MAC];
  const message = (type: number, ...options: number[]): Uint8Array => Uint8Array.of(type, 0x12, 0x34, 0x56, ...options);
  const ask = (m: Uint8Array): Uint8Array => udp6(g, parseIpv6('ff02::1:2'), 546, 547, m, 1, GUEST_LL);
  g.send(ask(message(11, 0, 1, 0, clientId.length, ...clientId, 0, 6, 0, 4, 0, 23, 0, 24)));
  const reply = Frame6.of(await g.next((f) => isIpv6(f, PROTO_UDP), 'DHCPv6 reply'));
  assert.equal(text(reply.src), 'fe80::2');
  assert.equal(text(reply.dst), text(GUEST_LL));
  assert.deepEqual([reply.srcPort, reply.dstPort], [547, 546]);
  assert.ok(reply.checksumOk);
  const body = reply.udpPayload;
  assert.deepEqual([...body.subarray(0, 4)], [7, 0x12, 0x34, 0x56]);
  const options = new Map<number, Uint8Array>();
  for (let at = 4; at < body.length; at += 4 + ((body[at + 2]! << 8) | body[at + 3]!)) {
    options.set((body[at]! << 8) | body[at + 1]!, body.subarray(at + 4, at + 4 + ((body[at + 2]! << 8) | body[at + 3]!)));
  }
  const serverId = options.get(2)!;
  assert.deepEqual([...serverId], [0, 3, 0, 1, ...ROUTER_MAC]);
  assert.deepEqual([...options.get(1)!], clientId);
  assert.equal(text(options.get(23)!), 'fec0::3');
  assert.equal(Buffer.from(options.get(24)!).toString('latin1'), '\x03lab\x04test\x00\x04corp\x03lab\x04test\x00');
  assert.equal(Buffer.from(options.get(59)!).toString(), 'tftp://[fec0::2]/boot.efi');
  g.send(ask(message(11, 0, 2, 0, serverId.length, ...serverId))); // to us by our DUID: answered
  await g.next((f) => isIpv6(f, PROTO_UDP), 'reply to a request naming this server');
  g.send(ask(message(1, 0, 1, 0, clientId.length, ...clientId))); // solicit
  g.send(ask(message(11, 0, 2, 0, 4, 0, 3, 0, 1))); // another server's
  g.send(ask(message(11, 0, 1, 0, 40, 1))); // an option past the end
  await settle();
  assert.deepEqual(ipv6Frames(g), []);
});

test('a hop limit that ends at the router gets ICMPv6 time exceeded quoting the packet; nothing is sent on', async () => {
  const g = await guest();
  const probe = udp6(g, parseIpv6('2001:db8::1'), 33434, 33434, Buffer.from('probe'), 1);
  g.send(probe);
  const reply = Frame6.of(await g.next((f) => isIpv6(f, PROTO_ICMPV6, 3), 'time exceeded'));
  assert.equal(text(reply.src), 'fec0::2');
  assert.deepEqual(reply.bytes.subarray(reply.l4 + 8), probe.subarray(14));
  assert.ok(reply.checksumOk);
  assert.equal(g.stack.stats.udpFlows, 0);
});

test('extension headers: options to skip are walked; discard-type options, routing, fragments, bad chains drop the packet', async () => {
  const g = await guest();
  const pad = [1, 4, 0, 0, 0, 0];
  const answered = async (frame: Uint8Array): Promise<boolean> => {
    g.send(frame);
    await settle();
    const replies = ipv6Frames(g).filter((f) => f.icmpType === 129);
    g.received.length = 0;
    return replies.length === 1;
  };
  assert.ok(await answered(withExtensionHeaders(echo6(HOST6), [[0, pad], [60, [5, 2, 0, 0, 1, 0]]])), 'hop-by-hop PadN, destination router alert');
  assert.ok(await answered(withExtensionHeaders(echo6(HOST6), [[43, [0, 0, 0, 0, 0, 0]]])), 'a routing header with no segments left');
  assert.ok(await answered(withExtensionHeaders(echo6(HOST6), Array.from({ length: 8 }, () => [60, pad] as [number, number[]]))), '8 headers');
  assert.ok(await answered(withExtensionHeaders(echo6(HOST6), [[0, pad], [44, [0, 0, 0, 0, 0, 1]]])), 'an atomic fragment after hop-by-hop');
  const dropped: [string, Uint8Array][] = [
    ['an option to discard when not understood', withExtensionHeaders(echo6(HOST6), [[60, [0x80, 4, 0, 0, 0, 0]]])],
    ['an option past its header', withExtensionHeaders(echo6(HOST6), [[0, [1, 9, 0, 0, 0, 0]]])],
    ['hop-by-hop not first', withExtensionHeaders(echo6(HOST6), [[60, pad], [0, pad]])],
    ['segments left', withExtensionHeaders(echo6(HOST6), [[43, [0, 1, 0, 0, 0, 0]]])],
    ['9 headers', withExtensionHeaders(echo6(HOST6), Array.from({ length: 9 }, () => [60, pad] as [number, number[]]))],
  ];
  for (const [what, frame] of dropped) assert.equal(await answered(frame), false, what);
  const long = withExtensionHeaders(echo6(HOST6), [[60, pad]]);
  long[55] = 200; // a header length past the payload
  assert.equal(await answered(long), false);
});

test('fragments: a 4,000-byte echo request in fragments is reassembled, its reply leaves in fragments; overlaps drop the datagram', async () => {
  const g = await guest();
  const big = (id: number): Uint8Array => icmp6(128, GUEST6, HOST6, Uint8Array.of(0xbe, 0xef, 0, id, ...Buffer.alloc(4000, id)));
  for (const piece of fragmentIpv6(big(1), 1500, 77).reverse()) g.send(piece);
  const reassembler = new Reassembler();
  let reply: Uint8Array | null = null;
  while (!reply) {
    const f = await g.next((x) => isIpv6(x, 44), 'reply fragment');
    assert.ok(f.bytes.length - 14 <= 1500);
    reply = reassembler.addIpv6(readIpv6(f.bytes, f.view)!);
  }
  const whole = new Frame6(reply);
  assert.equal(whole.icmpType, 129);
  assert.equal(whole.payloadLength, 4008);
  assert.ok(whole.checksumOk);
  const pieces = fragmentIpv6(big(2), 1500, 78);
  const overlap = pieces[1]!.slice();
  new DataView(overlap.buffer, overlap.byteOffset, overlap.byteLength).setUint16(54 + 2, 8 | 1); // offset 8 overlaps the first piece
  for (const piece of [pieces[0]!, overlap, ...pieces.slice(1)]) g.send(piece);
  await settle();
  assert.deepEqual(ipv6Frames(g), []);
});

test('restrict=on: the router answers ping and NDP, nothing goes through NAT or to DNS', async () => {
  const g = await guest('user,restrict=on');
  g.send(echo6(HOST6));
  await g.next((f) => isIpv6(f, PROTO_ICMPV6, 129), 'echo reply');
  g.send(udp6(g, HOST6, 40000, 9, Buffer.from('x')));
  g.send(udp6(g, DNS6, 40000, 53, Uint8Array.of(0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0x61, 0, 0, 1, 0, 1)));
  await settle();
  assert.equal(g.stack.stats.udpFlows, 0);
  assert.deepEqual(ipv6Frames(g), []);
});

test('ipv4=off: ARP and IPv4 are ignored while IPv6 answers; an IPv4 host forward is refused', async () => {
  const g = await guest('user,ipv4=off');
  g.send(g.udp(0xffffffff, 68, 67, new Uint8Array(300)));
  g.send(g.ipv4(1, 0x0a000202, 8, (v, at) => v.setUint8(at, 8)));
  await settle();
  assert.equal(g.received.length, 0);
  g.send(echo6(HOST6));
  await g.next((f) => isIpv6(f, PROTO_ICMPV6, 129), 'echo reply');
  await assert.rejects(g.stack.addHostForward(parseHostForward('tcp:127.0.0.1:0-:22')), /IPv4, which ipv4=off turned off/);
});

test('ipv6=off: IPv6 frames are ignored, and an IPv6 host forward is refused', async () => {
  const g = await guest('user,ipv6=off');
  g.send(neighborSolicitation(HOST6));
  g.send(echo6(HOST6));
  g.send(icmp6(133, GUEST_LL, parseIpv6('ff02::2'), Uint8Array.of(0, 0, 0, 0)));
  await settle();
  assert.deepEqual(ipv6Frames(g), []);
  await assert.rejects(g.stack.addHostForward(parseHostForward('tcp:[::1]:0-:22')), /IPv6, which ipv6=off turned off/);
});
