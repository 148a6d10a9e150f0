/**
 * Frame layout of the user stack and its one way out. Incoming frames are read in
 * place through a DataView (the offsets below); nothing is parsed into objects.
 *
 * Outgoing IPv4 packets are built as an OutPacket: one Uint8Array holding the
 * Ethernet header, a 20-byte IPv4 header (no options) and the L4 bytes the caller
 * fills at `l4`. The IPv4 header and the TCP/UDP/ICMP checksums are computed only
 * by the stack's emit step (finalize() below), the only path a packet leaves by,
 * so no packet can leave with a checksum forgotten.
 */
import { finish, pseudoHeader, sum } from './checksum.js';

export const ETH_HEADER = 14;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const IP_HEADER = 20;
export const L4 = ETH_HEADER + IP_HEADER;
export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const BROADCAST_MAC = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

/** An IPv4 packet being built; fill bytes from `l4` on, then hand it to the stack. */
export class OutPacket {
  readonly frame: Uint8Array;
  readonly view: DataView;
  readonly l4 = L4;

  constructor(readonly protocol: number, readonly src: number, readonly dst: number, l4Length: number) {
    this.frame = new Uint8Array(L4 + l4Length);
    this.view = new DataView(this.frame.buffer);
  }

  get l4Length(): number {
    return this.frame.length - L4;
  }

  /** Writes the Ethernet and IPv4 headers and every checksum. */
  finalize(dstMac: Uint8Array, srcMac: Uint8Array, id: number): Uint8Array {
    const { frame, view } = this;
    frame.set(dstMac, 0);
    frame.set(srcMac, 6);
    view.setUint16(12, ETHERTYPE_IPV4);
    view.setUint8(14, 0x45);
    view.setUint8(15, 0);
    view.setUint16(16, frame.length - ETH_HEADER);
    view.setUint16(18, id & 0xffff);
    view.setUint16(20, 0x4000); // don't fragment
    view.setUint8(22, 64);
    view.setUint8(23, this.protocol);
    view.setUint16(24, 0);
    view.setUint32(26, this.src);
    view.setUint32(30, this.dst);
    view.setUint16(24, finish(sum(frame, ETH_HEADER, IP_HEADER)));
    const length = this.l4Length;
    if (this.protocol === PROTO_ICMP) {
      view.setUint16(L4 + 2, 0);
      view.setUint16(L4 + 2, finish(sum(frame, L4, length)));
    } else {
      const at = L4 + (this.protocol === PROTO_TCP ? 16 : 6);
      view.setUint16(at, 0);
      const c = finish(sum(frame, L4, length, pseudoHeader(this.src, this.dst, this.protocol, length)));
      // UDP sends a computed zero as all ones (zero means "no checksum").
      view.setUint16(at, c === 0 && this.protocol === PROTO_UDP ? 0xffff : c);
    }
    return frame;
  }
}

/** A received IPv4 packet, validated: offsets into the frame, addresses as numbers. */
export interface InPacket {
  frame: Uint8Array;
  view: DataView;
  src: number;
  dst: number;
  /** Offset and length of the L4 bytes (the IP total length, not the frame's padding). */
  l4: number;
  l4Length: number;
}

/** The L4 checksum of a received TCP/UDP packet verifies (true also when a UDP sender sent none). */
export function l4ChecksumOk(p: InPacket, protocol: number): boolean {
  if (protocol === PROTO_UDP && p.view.getUint16(p.l4 + 6) === 0) return true;
  return finish(sum(p.frame, p.l4, p.l4Length, pseudoHeader(p.src, p.dst, protocol, p.l4Length))) === 0;
}
