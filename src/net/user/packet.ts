/**
 * Frame layout of the user stack and its one way out. Incoming frames are read in
 * place through a DataView (the offsets below); nothing is parsed into objects.
 *
 * Outgoing packets are built as an OutPacket: one Uint8Array holding the Ethernet
 * header, an IPv4 header (20 bytes, no options) or an IPv6 header (40 bytes, no
 * extension headers) chosen by the addresses' family, and the L4 bytes the caller
 * fills at `l4`. The IP header and the TCP/UDP/ICMP/ICMPv6 checksums are computed
 * only by the stack's emit step (finalize() below), the only path a packet leaves
 * by, so no packet can leave with a checksum forgotten. The frame comes from
 * frame-slab.ts (a view: its view honours byteOffset).
 */
import { freshFrame } from '../frame-slab.js';
import { finish, pseudoHeader, sum } from './checksum.js';
import type { IpAddress } from './ip-address.js';

export const ETH_HEADER = 14;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
export const IP_HEADER = 20;
export const IPV6_HEADER = 40;
export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;
export const BROADCAST_MAC = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

/** An IPv4 or IPv6 packet being built; fill bytes from `l4` on, then hand it to the stack. */
export class OutPacket {
  readonly frame: Uint8Array;
  readonly view: DataView;
  readonly l4: number;
  /** The TTL or hop limit it leaves with (NDP messages need 255). */
  hopLimit = 64;
  /**
   * For a TCP segment larger than the link's MTU that the consumer cuts itself (a
   * virtio-net GSO frame, see UserStack.enableOffloads): the payload bytes per cut
   * segment; 0 for an ordinary packet.
   */
  gsoSize = 0;

  constructor(readonly protocol: number, readonly src: IpAddress, readonly dst: IpAddress, l4Length: number) {
    this.l4 = ETH_HEADER + (typeof src === 'number' ? IP_HEADER : IPV6_HEADER);
    this.frame = freshFrame(this.l4 + l4Length);
    this.view = new DataView(this.frame.buffer, this.frame.byteOffset, this.frame.byteLength);
  }

  get l4Length(): number {
    return this.frame.length - this.l4;
  }

  /**
   * Writes the Ethernet and IP headers and every checksum (`id` is IPv4's identification).
   * With `partial` the L4 checksum field holds only the pseudo header's folded sum,
   * for a consumer that completes it (virtio-net's NEEDS_CSUM).
   */
  finalize(dstMac: Uint8Array, srcMac: Uint8Array, id: number, partial = false): Uint8Array {
    const { frame, view, l4, src, dst } = this;
    frame.set(dstMac, 0);
    frame.set(srcMac, 6);
    if (typeof src === 'number' && typeof dst === 'number') {
      view.setUint16(12, ETHERTYPE_IPV4);
      view.setUint8(14, 0x45);
      view.setUint8(15, 0);
      view.setUint16(16, frame.length - ETH_HEADER);
      view.setUint16(18, id & 0xffff);
      view.setUint16(20, 0x4000); // don't fragment
      view.setUint8(22, this.hopLimit);
      view.setUint8(23, this.protocol);
      view.setUint16(24, 0);
      view.setUint32(26, src);
      view.setUint32(30, dst);
      view.setUint16(24, finish(sum(frame, ETH_HEADER, IP_HEADER)));
    } else if (typeof src !== 'number' && typeof dst !== 'number') {
      view.setUint16(12, ETHERTYPE_IPV6);
      view.setUint32(14, 0x60000000); // version 6, no traffic class or flow label
      view.setUint16(18, this.l4Length);
      view.setUint8(20, this.protocol);
      view.setUint8(21, this.hopLimit);
      frame.set(src, 22);
      frame.set(dst, 38);
    } else throw new Error('OutPacket: source and destination of different families');
    const length = this.l4Length;
    if (this.protocol === PROTO_ICMP) {
      view.setUint16(l4 + 2, 0);
      view.setUint16(l4 + 2, finish(sum(frame, l4, length)));
    } else {
      const at = l4 + (this.protocol === PROTO_TCP ? 16 : this.protocol === PROTO_UDP ? 6 : 2);
      view.setUint16(at, 0);
      if (partial) {
        view.setUint16(at, ~finish(pseudoHeader(src, dst, this.protocol, length)) & 0xffff);
        return frame;
      }
      const c = finish(sum(frame, l4, length, pseudoHeader(src, dst, this.protocol, length)));
      // UDP sends a computed zero as all ones (zero means "no checksum").
      view.setUint16(at, c === 0 && this.protocol === PROTO_UDP ? 0xffff : c);
    }
    return frame;
  }
}

/** A received IPv4 or IPv6 packet, validated: offsets into the frame, its addresses. */
export interface InPacket {
  frame: Uint8Array;
  view: DataView;
  src: IpAddress;
  dst: IpAddress;
  /** Offset and length of the L4 bytes (the IP total length, not the frame's padding). */
  l4: number;
  l4Length: number;
  /** The sender's virtio-net header said the L4 checksum is partial or already verified: it is not checked here. */
  l4ChecksumTrusted?: boolean;
}

/**
 * The L4 checksum of a received TCP/UDP/ICMPv6 packet verifies (true also when a UDP
 * sender over IPv4 sent none; over IPv6 the UDP checksum is mandatory).
 */
export function l4ChecksumOk(p: InPacket, protocol: number): boolean {
  if (p.l4ChecksumTrusted || (protocol === PROTO_UDP && typeof p.src === 'number' && p.view.getUint16(p.l4 + 6) === 0)) return true;
  return finish(sum(p.frame, p.l4, p.l4Length, pseudoHeader(p.src, p.dst, protocol, p.l4Length))) === 0;
}
