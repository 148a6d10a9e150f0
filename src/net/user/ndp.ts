/**
 * Neighbor Discovery for the user network's IPv6 side (RFC 4861), the IPv6 twin of
 * arp.ts, and router advertisements for stateless autoconfiguration (RFC 4862).
 *
 * The router answers for three addresses, all at the router MAC: its link-local
 * fe80::2 (the guests' default router, the source of its advertisements), the host
 * address and the DNS address. Neighbor solicitations for them get an advertisement
 * (router, solicited and override flags set; to all nodes when the asker is doing
 * duplicate address detection). Guests' MACs are learnt from the source of any of
 * their frames, from the link-layer options of their solicitations and
 * advertisements; a packet for a guest whose MAC is unknown waits for the answer to
 * a solicitation the router sends to the guest's solicited-node group
 * (neighbours.ts). Multicast destinations go at once to their 33:33 MAC.
 *
 * Router advertisements carry the prefix (on-link and autonomous, valid 24 h,
 * preferred 4 h), the MTU (1500), the router's MAC and the DNS address (RDNSS,
 * RFC 8106), with a router lifetime of 30 min and the "other configuration" flag
 * (stateless DHCPv6, dhcpv6.ts). One answers each router solicitation
 * (at most one per 500 ms), and one goes to all nodes every 200 to 600 s (random).
 * The guest's own address in the prefix, which IPv6 host forwards without a guest
 * address go to, is the last one seen as a source or as a duplicate address
 * detection target. NDP messages not sent with hop limit 255, with a code other
 * than 0 or shorter than their fixed part are ignored, as RFC 4861 asks; options
 * with a zero or overlong length end the option walk.
 */
import type { Ipv6Config } from './ipv6-options.js';
import {
  addressKey, inPrefix6, isMulticast6, isUnspecified6, multicastMac, parseIpv6, sameAddress, solicitedNode,
  type Ipv6Address,
} from './ip-address.js';
import type { Ipv6Packet } from './ipv6.js';
import { Neighbours } from './neighbours.js';
import { OutPacket, PROTO_ICMPV6, type InPacket } from './packet.js';

export const ROUTER_LINK_LOCAL = parseIpv6('fe80::2');
const ALL_NODES = parseIpv6('ff02::1');

const ROUTER_SOLICITATION = 133;
const ROUTER_ADVERTISEMENT = 134;
const NEIGHBOR_SOLICITATION = 135;
const NEIGHBOR_ADVERTISEMENT = 136;
const OPT_SOURCE_LINK = 1;
const OPT_TARGET_LINK = 2;
const OPT_PREFIX = 3;
const OPT_MTU = 5;
const OPT_RDNSS = 25;
const NDP_HOP_LIMIT = 255;
const ROUTER_LIFETIME_S = 1800;
const VALID_LIFETIME_S = 86400;
const PREFERRED_LIFETIME_S = 14400;
const MTU = 1500;
const MIN_ADVERT_S = 200;
const MAX_ADVERT_S = 600;
const MIN_SOLICITED_GAP_MS = 500;

export class Ndp {
  private readonly neighbours: Neighbours<Ipv6Address>;
  private timer: NodeJS.Timeout | null = null;
  private lastSolicitedAdvert = 0;
  /** The guest's address in the prefix, once seen. */
  guestAddress: Ipv6Address | null = null;

  constructor(
    private readonly config: Ipv6Config,
    private readonly routerMac: Uint8Array,
    private readonly put: (frame: Uint8Array) => void,
  ) {
    this.neighbours = new Neighbours<Ipv6Address>(addressKey, (addr) => this.isNeighbour(addr),
      (addr) => (isMulticast6(addr) ? multicastMac(addr) : undefined), (addr) => this.solicit(addr), put);
    this.scheduleAdvert();
  }

  /** Whether the router answers for the address (link-local, host, DNS). */
  isRouter(addr: Ipv6Address): boolean {
    return sameAddress(addr, ROUTER_LINK_LOCAL) || sameAddress(addr, this.config.host) || sameAddress(addr, this.config.dns);
  }

  private isNeighbour(addr: Ipv6Address): boolean {
    return !isMulticast6(addr) && !isUnspecified6(addr) && !this.isRouter(addr);
  }

  /** Finalizes a packet and sends its frames (`frames` may cut it up) once the destination's MAC is known. */
  send(packet: OutPacket, frames: (frame: Uint8Array) => Uint8Array[] = (f) => [f]): void {
    this.neighbours.deliver(packet.dst as Ipv6Address, (mac) => frames(packet.finalize(mac, this.routerMac, 0)));
  }

  /** Notes a guest's source address and MAC from any of its packets. */
  learn(addr: Ipv6Address, mac: Uint8Array): void {
    if (!this.isNeighbour(addr)) return;
    this.neighbours.learn(addr, mac);
    this.noteGuest(addr);
  }

  private noteGuest(addr: Ipv6Address): void {
    if (inPrefix6(addr, this.config.prefix, this.config.prefixLength) && !this.isRouter(addr)) this.guestAddress = addr;
  }

  /** An ICMPv6 NDP message from the guest (checksum verified); false when it is no NDP message. */
  input(p: Ipv6Packet): boolean {
    const type = p.view.getUint8(p.l4);
    if (type < ROUTER_SOLICITATION || type > NEIGHBOR_ADVERTISEMENT) return false;
    if (type === ROUTER_ADVERTISEMENT) return true; // another router on the segment: not ours to follow
    const fixed = type === ROUTER_SOLICITATION ? 8 : 24;
    if (p.hopLimit !== NDP_HOP_LIMIT || p.view.getUint8(p.l4 + 1) !== 0 || p.l4Length < fixed) return true;
    const linkOption = this.linkOption(p, fixed, type === NEIGHBOR_ADVERTISEMENT ? OPT_TARGET_LINK : OPT_SOURCE_LINK);
    if (type === ROUTER_SOLICITATION) {
      if (linkOption && !isUnspecified6(p.src)) this.learn(p.src, linkOption);
      const now = Date.now();
      if (now - this.lastSolicitedAdvert >= MIN_SOLICITED_GAP_MS) {
        this.lastSolicitedAdvert = now;
        this.advertiseRouter();
      }
      return true;
    }
    const target = p.frame.slice(p.l4 + 8, p.l4 + 24);
    if (type === NEIGHBOR_ADVERTISEMENT) {
      if (!isMulticast6(target)) this.learn(target, linkOption ?? p.frame.subarray(6, 12));
      return true;
    }
    if (isUnspecified6(p.src)) {
      // Duplicate address detection: the guest is about to take `target`.
      if (this.isRouter(target)) this.advertiseNeighbor(target, ALL_NODES, false);
      else if (!isMulticast6(target)) this.noteGuest(target);
      return true;
    }
    if (linkOption) this.learn(p.src, linkOption);
    if (this.isRouter(target)) this.advertiseNeighbor(target, p.src, true);
    return true;
  }

  /** The MAC in the first option of `kind` after the message's fixed part (null when absent or malformed). */
  private linkOption(p: InPacket, fixed: number, kind: number): Uint8Array | null {
    const end = p.l4 + p.l4Length;
    for (let at = p.l4 + fixed; at + 2 <= end; ) {
      const length = p.view.getUint8(at + 1) * 8;
      if (length === 0 || at + length > end) return null;
      if (p.view.getUint8(at) === kind && length === 8) return p.frame.subarray(at + 2, at + 8);
      at += length;
    }
    return null;
  }

  private ndpPacket(src: Ipv6Address, dst: Ipv6Address, type: number, length: number): OutPacket {
    const p = new OutPacket(PROTO_ICMPV6, src, dst, length);
    p.hopLimit = NDP_HOP_LIMIT;
    p.view.setUint8(p.l4, type);
    return p;
  }

  /** A neighbor advertisement for one of the router's addresses. */
  private advertiseNeighbor(target: Ipv6Address, dst: Ipv6Address, solicited: boolean): void {
    const p = this.ndpPacket(target, dst, NEIGHBOR_ADVERTISEMENT, 32);
    p.view.setUint32(p.l4 + 4, (0x80000000 | (solicited ? 0x40000000 : 0) | 0x20000000) >>> 0); // router, solicited, override
    p.frame.set(target, p.l4 + 8);
    this.writeLinkOption(p, p.l4 + 24, OPT_TARGET_LINK);
    this.send(p);
  }

  /** Asks for a guest's MAC (from the host address when the guest is in the prefix, else the link-local one). */
  private solicit(target: Ipv6Address): void {
    const src = inPrefix6(target, this.config.prefix, this.config.prefixLength) ? this.config.host : ROUTER_LINK_LOCAL;
    const group = solicitedNode(target);
    const p = this.ndpPacket(src, group, NEIGHBOR_SOLICITATION, 32);
    p.frame.set(target, p.l4 + 8);
    this.writeLinkOption(p, p.l4 + 24, OPT_SOURCE_LINK);
    this.put(p.finalize(multicastMac(group), this.routerMac, 0));
  }

  private writeLinkOption(p: OutPacket, at: number, kind: number): void {
    p.view.setUint8(at, kind);
    p.view.setUint8(at + 1, 1);
    p.frame.set(this.routerMac, at + 2);
  }

  /** A router advertisement to all nodes. */
  advertiseRouter(): void {
    const p = this.ndpPacket(ROUTER_LINK_LOCAL, ALL_NODES, ROUTER_ADVERTISEMENT, 16 + 8 + 8 + 32 + 24);
    const v = p.view;
    let at = p.l4;
    v.setUint8(at + 4, 64); // the hop limit guests should use
    v.setUint8(at + 5, 0x40); // "other configuration": DNS and boot file from stateless DHCPv6
    v.setUint16(at + 6, ROUTER_LIFETIME_S);
    at += 16;
    this.writeLinkOption(p, at, OPT_SOURCE_LINK);
    at += 8;
    v.setUint8(at, OPT_MTU);
    v.setUint8(at + 1, 1);
    v.setUint32(at + 4, MTU);
    at += 8;
    v.setUint8(at, OPT_PREFIX);
    v.setUint8(at + 1, 4);
    v.setUint8(at + 2, this.config.prefixLength);
    v.setUint8(at + 3, 0xc0); // on-link, autonomous
    v.setUint32(at + 4, VALID_LIFETIME_S);
    v.setUint32(at + 8, PREFERRED_LIFETIME_S);
    p.frame.set(this.config.prefix, at + 16);
    at += 32;
    v.setUint8(at, OPT_RDNSS);
    v.setUint8(at + 1, 3);
    v.setUint32(at + 4, ROUTER_LIFETIME_S);
    p.frame.set(this.config.dns, at + 8);
    this.put(p.finalize(multicastMac(ALL_NODES), this.routerMac, 0));
  }

  private scheduleAdvert(): void {
    const seconds = MIN_ADVERT_S + Math.random() * (MAX_ADVERT_S - MIN_ADVERT_S);
    this.timer = setTimeout(() => {
      this.advertiseRouter();
      this.scheduleAdvert();
    }, seconds * 1000);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
