/**
 * Test helper: IPv6 frames of a synthetic guest (the SyntheticGuest's MAC, its EUI-64
 * addresses in fec0::/64 and fe80::/64), built with the stack's own OutPacket so
 * every checksum is right (UDP and TCP: SyntheticGuest's IPv4 frames carried over
 * IPv6), extension headers spliced in after the fact, a reader for the IPv6 frames
 * the stack sends back, and a factory of guests closed after a file's tests.
 */
import { finish, pseudoHeader, sum } from '../../src/net/user/checksum.js';
import { parseIpv6, type Ipv6Address } from '../../src/net/user/ip-address.js';
import { OutPacket, PROTO_ICMPV6 } from '../../src/net/user/packet.js';
import { ROUTER_MAC } from '../../src/net/user/stack.js';
import { after } from 'node:test';
import { GUEST_MAC, SyntheticGuest, type Frame } from './synthetic.js';

export const GUEST6 = parseIpv6('fec0::5054:ff:fe12:3456');
export const GUEST_LL = parseIpv6('fe80::5054:ff:fe12:3456');
export const HOST6 = parseIpv6('fec0::2');
export const DNS6 = parseIpv6('fec0::3');
export const ROUTER_LL = parseIpv6('fe80::2');
export const ALL_NODES_MAC = Uint8Array.of(0x33, 0x33, 0, 0, 0, 1);

/** An IPv6 frame from the guest; `fill` writes the L4 bytes (checksum computed after). */
export function ipv6Frame(protocol: number, src: Ipv6Address, dst: Ipv6Address, l4Length: number, fill: (view: DataView, at: number) => void, hopLimit = 64): Uint8Array {
  const p = new OutPacket(protocol, src, dst, l4Length);
  p.hopLimit = hopLimit;
  fill(p.view, p.l4);
  return p.finalize(ROUTER_MAC, GUEST_MAC, 0);
}

/** An ICMPv6 message of `type` with `body` after its 4-byte header (NDP messages go with hop limit 255). */
export function icmp6(type: number, src: Ipv6Address, dst: Ipv6Address, body: Uint8Array, hopLimit = type >= 133 && type <= 137 ? 255 : 64): Uint8Array {
  return ipv6Frame(PROTO_ICMPV6, src, dst, 4 + body.length, (v, at) => {
    v.setUint8(at, type);
    new Uint8Array(v.buffer, v.byteOffset, v.byteLength).set(body, at + 4);
  }, hopLimit);
}

export function echo6(dst: Ipv6Address, id = 0xbeef, seq = 1, src = GUEST6): Uint8Array {
  return icmp6(128, src, dst, Uint8Array.of(id >> 8, id & 255, seq >> 8, seq & 255, ...Buffer.from('ping six')));
}

/** A neighbor solicitation for `target` (with the guest's MAC as source link-layer option unless from ::). */
export function neighborSolicitation(target: Ipv6Address, src = GUEST_LL, hopLimit = 255): Uint8Array {
  const dst = parseIpv6('ff02::1:ff00:0');
  dst.set(target.subarray(13), 13);
  const option = src.every((b) => b === 0) ? [] : [1, 1, ...GUEST_MAC];
  return icmp6(135, src, dst, Uint8Array.of(0, 0, 0, 0, ...target, ...option), hopLimit);
}

/**
 * The L4 bytes of an IPv4 frame (as SyntheticGuest builds them: udp(), tcp()) carried
 * over IPv6 from `src` to `dst` instead, their checksum computed afresh.
 */
export function overIpv6(v4: Uint8Array, dst: Ipv6Address, src = GUEST6, hopLimit = 64): Uint8Array {
  const l4 = 14 + (v4[14]! & 15) * 4;
  const end = 14 + new DataView(v4.buffer, v4.byteOffset).getUint16(16);
  return ipv6Frame(v4[23]!, src, dst, end - l4, (v, at) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength).set(v4.subarray(l4, end), at), hopLimit);
}

/** Synthetic guests for a test file, closed after its tests. */
export function guestFactory(): (spec?: string) => Promise<SyntheticGuest> {
  const open: SyntheticGuest[] = [];
  after(async () => {
    for (const g of open) await g.close();
  });
  return async (spec) => {
    const g = await SyntheticGuest.create(spec);
    open.push(g);
    return g;
  };
}

/**
 * Splices extension headers between a frame's IPv6 header and its payload: each is
 * [next-header-type, bytes after the first two] (its length field is filled in);
 * the upper-layer checksum stays valid, as it covers the upper layer only.
 */
export function withExtensionHeaders(frame: Uint8Array, headers: [number, number[]][]): Uint8Array {
  const upper = frame[20]!;
  const types = headers.map(([t]) => t);
  const blocks = headers.map(([, body], i) => {
    const b = Uint8Array.of(types[i + 1] ?? upper, (body.length + 2) / 8 - 1, ...body);
    return b;
  });
  const out = new Uint8Array(frame.length + blocks.reduce((n, b) => n + b.length, 0));
  out.set(frame.subarray(0, 54));
  let at = 54;
  for (const b of blocks) {
    out.set(b, at);
    at += b.length;
  }
  out.set(frame.subarray(54), at);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setUint16(18, out.length - 54);
  out[20] = types[0] ?? upper;
  return out;
}

/** Field readers over an IPv6 frame the stack sent (no extension headers: the stack sends none). */
export class Frame6 {
  readonly view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  static of(f: Frame): Frame6 {
    return new Frame6(f.bytes);
  }
  get isIpv6(): boolean { return this.view.getUint16(12) === 0x86dd; }
  get nextHeader(): number { return this.bytes[20]!; }
  get hopLimit(): number { return this.bytes[21]!; }
  get src(): Ipv6Address { return this.bytes.subarray(22, 38); }
  get dst(): Ipv6Address { return this.bytes.subarray(38, 54); }
  get payloadLength(): number { return this.view.getUint16(18); }
  get l4(): number { return 54; }
  get icmpType(): number { return this.nextHeader === PROTO_ICMPV6 ? this.bytes[54]! : -1; }
  get srcPort(): number { return this.view.getUint16(54); }
  get dstPort(): number { return this.view.getUint16(56); }
  get tcpFlags(): number { return this.bytes[54 + 13]!; }
  get udpPayload(): Uint8Array { return this.bytes.subarray(62, 54 + this.view.getUint16(58)); }
  /** The upper-layer checksum verifies (pseudo header included). */
  get checksumOk(): boolean {
    return finish(sum(this.bytes, 54, this.payloadLength, pseudoHeader(this.src, this.dst, this.nextHeader, this.payloadLength))) === 0;
  }
}

/** Whether a frame is IPv6 with next header `protocol` (and ICMPv6 type, when given). */
export function isIpv6(f: Frame, protocol: number, icmpType?: number): boolean {
  const g = Frame6.of(f);
  return g.isIpv6 && g.nextHeader === protocol && (icmpType === undefined || g.icmpType === icmpType);
}
