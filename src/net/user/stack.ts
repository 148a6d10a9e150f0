/**
 * The user-mode network stack (QEMU's "user" netdev): a frame backend that plays
 * the router a guest sees, with no privileges on the host. Frames sent to it are
 * the guest's; frames it puts out are for the guest.
 *
 * ARP (arp.ts) answers for the host, DNS and guest forward addresses and finds
 * guests' MACs.
 * IPv4 packets are checked (version, header length, total length, header
 * checksum); fragments are reassembled (fragments.ts) and datagrams larger than
 * the MTU are fragmented on their way to the guest; a packet that would be passed
 * on with its TTL at 1 or 0 gets ICMP time exceeded from the host address. Then:
 * ICMP echo to the host or DNS address is answered here, to addresses NAT reaches
 * through the host's unprivileged ICMP socket (icmp-echo.ts); UDP to port 67 goes to
 * the DHCP server, to the DNS address port 53 to the DNS server, to the host
 * address port 69 (and the transfers' ports) to the TFTP server when tftp= is set;
 * other UDP and TCP go
 * through NAT to host sockets: the host address stands for the host's 127.0.0.1,
 * other addresses of the user network are unreachable, addresses outside it are
 * reached as themselves; guest forwards (guestfwd=) take TCP connections to their
 * server address and port to a command or a host socket. With restrict=on the
 * guest reaches only DHCP, TFTP, ARP, ping of the router and the guest forwards:
 * no NAT and no DNS; host forwards still work.
 *
 * IPv6 (ipv6=on, the default): packets are checked and their extension headers
 * walked (ipv6.ts); NDP and router advertisements give the guest its SLAAC address
 * in the prefix and the DNS address (ndp.ts). ICMPv6 echo to the router's addresses
 * is answered here, to other addresses through the host's ICMPv6 socket; UDP to the
 * DNS address port 53 goes to the DNS server; other UDP and TCP go through the same
 * NAT as IPv4's: the IPv6 host address stands for the host's ::1, other addresses
 * of the prefix, link-local, multicast and IPv4-embedding addresses are
 * unreachable, others are reached as themselves. A hop limit that ends here gets
 * ICMPv6 time exceeded. Information-requests to port 547 go to the stateless DHCPv6
 * server (dhcpv6.ts). restrict=on cuts IPv6 off the same way. Fragments are
 * reassembled and packets to the guest larger than the MTU fragmented, as for
 * IPv4. TFTP answers at the IPv6 host address too; guest forwards are IPv4 only. ipv4=off drops ARP and IPv4 as ipv6=off drops IPv6. Other ethertypes
 * are dropped.
 *
 * Offloads (enableOffloads(), for a segment whose other end is a tap with vnet_hdr=on
 * and offloads on): frames from the guest may come with a virtio-net header; a
 * partial or already verified L4 checksum is then not checked, and TCP segments
 * up to 64 KiB (the guest's TSO) are taken whole. TCP data to an IPv4 guest leaves
 * in segments of up to 64 KiB with a GSO header (NEEDS_CSUM, TCPV4, the MSS) that
 * the kernel cuts or hands to the guest's stack whole: one frame instead of 44.
 *
 * Host forwards are started by create() and can be added and removed at run time
 * (addHostForward, removeHostForward). close() resets every connection and closes
 * every socket and listener.
 */
import type { Socket as UdpSocket } from 'node:dgram';
import { createSocket } from 'node:dgram';
import type { AddressInfo, Server } from 'node:net';
import { formatIpv4, inNetwork, parseIpv4, prefixMask } from '../address.js';
import { MIN_FRAME, type FrameBackend, type FrameHandler } from '../backend.js';
import type { Duplex } from 'node:stream';
import type { GuestForward, HostForward, UserNetdev } from '../spec.js';
import { Arp } from './arp.js';
import { finish, sum } from './checksum.js';
import { fragment, fragmentIpv6, Reassembler } from './fragments.js';
import { DhcpServer } from './dhcp.js';
import { answerDnsQuery } from './dns.js';
import { IcmpEcho } from './icmp-echo.js';
import {
  addressKey, formatAddress, formatIpv6, hostPortText, inPrefix6, isEmbeddedIpv4, isLinkLocal6, isMulticast6, parseIpv6,
  sameAddress, type IpAddress,
} from './ip-address.js';
import { readIpv6, type Ipv6Packet } from './ipv6.js';
import { Ndp, ROUTER_LINK_LOCAL } from './ndp.js';
import { DHCPV6_SERVER_PORT, Dhcpv6Server } from './dhcpv6.js';
import {
  BROADCAST_MAC, ETH_HEADER, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, l4ChecksumOk, OutPacket,
  PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, type InPacket,
} from './packet.js';
import { commandStream } from './command-stream.js';
import { connectHost, TcpNat } from './tcp.js';
import { TftpServer } from './tftp.js';
import { udpPacket, UdpNat } from './udp.js';
import { encodeVnetHeader, VNET_HDR_F_DATA_VALID, VNET_HDR_F_NEEDS_CSUM, VNET_HDR_GSO_TCPV4 } from '../vnet-hdr.js';

/** The link MTU the stack assumes (its frames carry at most this many IP bytes). */
const MTU = 1500;
const LOOPBACK = 0x7f000001;
const LOOPBACK6 = parseIpv6('::1');
/** IPv6's fragment header, as an upper layer readIpv6 stops at. */
const PROTO_FRAGMENT = 44;
const ALL_DHCP_AGENTS = parseIpv6('ff02::1:2');
/** The most of a packet an ICMPv6 error quotes (its message fits IPv6's minimum MTU, 1280). */
const ICMPV6_ERROR_QUOTE = 1280 - 48;

/** The router's MAC: locally administered, its last four bytes the default host address 10.0.2.2. */
export const ROUTER_MAC = new Uint8Array([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);

/** A started host forward: where it listens. */
export interface ActiveForward {
  forward: HostForward;
  address: string;
  port: number;
}

interface Listener {
  active: ActiveForward;
  close(): void;
}

export class UserStack implements FrameBackend {
  readonly name = 'user';
  private handler: FrameHandler = () => {};
  private closed = false;
  private ipId = 0;
  /** The consumer takes GSO frames and virtio-net headers (enableOffloads). */
  private offloads = false;
  private readonly arp: Arp;
  private readonly dhcp: DhcpServer;
  private readonly udp: UdpNat;
  private readonly tcp: TcpNat;
  private readonly tftp: TftpServer | null;
  private readonly echo = new IcmpEcho(4, (packet) => this.emit(packet));
  private readonly echo6 = new IcmpEcho(6, (packet) => this.emit(packet));
  /** The IPv6 side (null with ipv6=off). */
  private readonly ndp: Ndp | null;
  private readonly dhcpv6: Dhcpv6Server | null;
  private readonly reassembler = new Reassembler();
  private readonly listeners: Listener[] = [];
  private readonly guestForwards = new Map<string, GuestForward>();
  private readonly openHost = (dst: IpAddress, port: number): Duplex | null => this.openHostEnd(dst, port);
  /** The addresses the router itself answers for: host, DNS, guest forwards; for IPv6 its link-local, host and DNS addresses. */
  private readonly isRouter = (addr: IpAddress): boolean => typeof addr !== 'number' ? this.ndp !== null && this.ndp.isRouter(addr)
    : addr === this.config.host || addr === this.config.dns || this.config.guestfwd.some((g) => g.addr === addr);

  private constructor(readonly config: UserNetdev) {
    const broadcast = (config.net | ~prefixMask(config.prefix)) >>> 0;
    const isNeighbour = (addr: number): boolean =>
      inNetwork(addr, config.net, config.prefix) && !this.isRouter(addr) && addr !== config.net && addr !== broadcast;
    this.arp = new Arp(ROUTER_MAC, config.host, this.isRouter, isNeighbour, (frame) => this.put(frame));
    this.dhcp = new DhcpServer(config);
    this.udp = new UdpNat(this);
    this.tcp = new TcpNat(this);
    this.ndp = config.ipv6 ? new Ndp(config.ipv6, ROUTER_MAC, (frame) => this.put(frame)) : null;
    this.dhcpv6 = config.ipv6 ? new Dhcpv6Server(config, config.ipv6, ROUTER_MAC) : null;
    for (const g of config.guestfwd) this.guestForwards.set(`${addressKey(g.addr)}:${g.port}`, g);
    this.tftp = config.tftp === undefined ? null
      : new TftpServer(config.tftp, (srcPort, guest, guestPort, payload) => this.emit(udpPacket(this.hostOf(guest), srcPort, guest, guestPort, payload)));
  }

  /** Creates the stack and starts its host forwards (an error if one cannot listen). */
  static async create(config: UserNetdev): Promise<UserStack> {
    const stack = new UserStack(config);
    try {
      for (const fwd of config.hostfwd) await stack.addHostForward(fwd);
    } catch (err) {
      await stack.close();
      throw err;
    }
    return stack;
  }

  onFrame(handler: FrameHandler): void {
    this.handler = handler;
  }

  /** Live counts, for tests and the monitor. */
  get stats(): { tcpConnections: number; udpFlows: number } {
    return { tcpConnections: this.tcp.size, udpFlows: this.udp.size };
  }

  get forwards(): readonly ActiveForward[] {
    return this.listeners.map((l) => l.active);
  }

  /**
   * Lets the frames this stack puts out be large TCP segments under a virtio-net GSO
   * header, and the frames it takes carry virtio-net headers: for a consumer that
   * handles both (a tap with vnet_hdr=on whose offloads are on, a virtio-net card whose
   * driver took them). `on` false turns them off again (the card was reset).
   */
  enableOffloads(on = true): void {
    this.offloads = on;
  }

  /** Whether TCP may hand emit() segments larger than the MTU (TcpOutput). */
  get largeSegments(): boolean {
    return this.offloads;
  }

  /** Sends a packet to the guest (the only way a packet leaves). */
  emit(packet: OutPacket): void {
    if (this.closed) return;
    const { dst } = packet;
    const id = this.ipId++;
    if (typeof dst !== 'number') return this.ndp?.send(packet, (frame) => fragmentIpv6(frame, MTU, id));
    if (packet.gsoSize > 0 && this.offloads) {
      // The frame goes out here with its header (the builder puts it itself and gives no frames to put).
      return this.arp.deliver(dst, (mac) => {
        this.put(packet.finalize(mac, ROUTER_MAC, id, true), tcpGsoHeader(packet));
        return [];
      });
    }
    this.arp.deliver(dst, (mac) => fragment(packet.finalize(mac, ROUTER_MAC, id), MTU));
  }

  private put(frame: Uint8Array, vnetHdr?: Uint8Array): void {
    if (!this.closed) this.handler(frame, vnetHdr);
  }

  send(frame: Uint8Array, vnetHdr?: Uint8Array): void {
    if (this.closed || frame.length < MIN_FRAME) return;
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    const type = view.getUint16(12);
    const trusted = this.offloads && vnetHdr !== undefined && vnetHeaderVouchesForChecksum(vnetHdr);
    if (type === ETHERTYPE_IPV6) this.ipv6(frame, view, trusted);
    else if (!this.config.ipv4) return;
    else if (type === ETHERTYPE_ARP) this.arp.input(frame, view);
    else if (type === ETHERTYPE_IPV4) this.ipv4(frame, view, trusted);
  }

  private ipv4(frame: Uint8Array, view: DataView, l4ChecksumTrusted = false): void {
    if (frame.length < ETH_HEADER + 20) return;
    const vihl = view.getUint8(14);
    const headerLength = (vihl & 15) * 4;
    const total = view.getUint16(16);
    if (vihl >> 4 !== 4 || headerLength < 20 || total < headerLength || ETH_HEADER + total > frame.length) return;
    if (finish(sum(frame, ETH_HEADER, headerLength)) !== 0) return;
    if ((view.getUint16(20) & 0x3fff) !== 0) {
      // A fragment (MF set or an offset): handled once its datagram is whole.
      const whole = this.reassembler.add(frame, view, headerLength, total);
      if (whole) this.ipv4(whole, new DataView(whole.buffer));
      return;
    }
    const dst = view.getUint32(30);
    this.arp.learn(view.getUint32(26), frame.subarray(6, 12));
    if (view.getUint8(22) <= 1 && !this.isRouter(dst) && dst !== 0xffffffff) {
      return this.timeExceeded(view.getUint32(26), frame.subarray(ETH_HEADER, ETH_HEADER + headerLength + Math.min(8, total - headerLength)));
    }
    const p: InPacket = {
      frame, view,
      src: view.getUint32(26),
      dst,
      l4: ETH_HEADER + headerLength,
      l4Length: total - headerLength,
      l4ChecksumTrusted,
    };
    switch (view.getUint8(23)) {
      case PROTO_ICMP: return this.icmp(p);
      case PROTO_UDP: return this.udpIn(p);
      case PROTO_TCP: return this.tcp.input(p, this.openHost);
    }
  }

  private ipv6(frame: Uint8Array, view: DataView, l4ChecksumTrusted = false): void {
    const p = readIpv6(frame, view);
    if (!p || !this.ndp) return;
    p.l4ChecksumTrusted = l4ChecksumTrusted;
    if (p.protocol === PROTO_FRAGMENT) {
      const whole = this.reassembler.addIpv6(p);
      if (whole) this.ipv6(whole, new DataView(whole.buffer));
      return;
    }
    this.ndp.learn(p.src, frame.subarray(6, 12));
    if (isMulticast6(p.dst)) {
      // NDP and DHCPv6 to a group; nothing else is for the router.
      if (p.protocol === PROTO_ICMPV6) this.icmp6(p);
      else if (p.protocol === PROTO_UDP && sameAddress(p.dst, ALL_DHCP_AGENTS)) this.udpIn(p);
      return;
    }
    if (p.hopLimit <= 1 && !this.ndp.isRouter(p.dst)) {
      return this.timeExceeded(p.src, frame.subarray(ETH_HEADER, Math.min(p.l4 + p.l4Length, ETH_HEADER + ICMPV6_ERROR_QUOTE)));
    }
    switch (p.protocol) {
      case PROTO_ICMPV6: return this.icmp6(p);
      case PROTO_UDP: return this.udpIn(p);
      case PROTO_TCP: return this.tcp.input(p, this.openHost);
    }
  }

  /** Where the host reaches a guest destination, or null when the guest may not reach it. */
  private hostAddressOf(dst: IpAddress): IpAddress | null {
    const { config } = this;
    if (config.restrict) return null;
    if (typeof dst === 'number') {
      if (dst === config.host) return LOOPBACK;
      if (inNetwork(dst, config.net, config.prefix) || dst >>> 28 >= 14 || dst >>> 24 === 0 || dst >>> 24 === 127) return null;
      return dst;
    }
    const v6 = config.ipv6;
    if (!v6) return null;
    if (sameAddress(dst, v6.host)) return LOOPBACK6;
    if (inPrefix6(dst, v6.prefix, v6.prefixLength) || isLinkLocal6(dst) || isMulticast6(dst) || isEmbeddedIpv4(dst)) return null;
    return dst;
  }

  /** The host address a guest address's family sees (the IPv6 one only when IPv6 is on, as IPv6 guests exist only then). */
  private hostOf(guest: IpAddress): IpAddress {
    return typeof guest === 'number' || !this.config.ipv6 ? this.config.host : this.config.ipv6.host;
  }

  private isDns(addr: IpAddress): boolean {
    return typeof addr === 'number' ? addr === this.config.dns : this.config.ipv6 !== null && sameAddress(addr, this.config.ipv6.dns);
  }

  /** The host end of a new guest TCP connection: a guest forward's target, else NAT. */
  private openHostEnd(dst: IpAddress, port: number): Duplex | null {
    const g = this.guestForwards.get(`${addressKey(dst)}:${port}`);
    if (g) return g.target.kind === 'cmd' ? commandStream(g.target.command) : connectHost(g.target.host, g.target.port);
    const host = this.hostAddressOf(dst);
    return host === null ? null : connectHost(formatAddress(host), port);
  }

  /**
   * A packet whose TTL or hop limit ends here instead of being passed on: ICMP or
   * ICMPv6 time exceeded from the host address, quoting `quoted` (so traceroute works).
   */
  private timeExceeded(src: IpAddress, quoted: Uint8Array): void {
    const v4 = typeof src === 'number';
    const p = new OutPacket(v4 ? PROTO_ICMP : PROTO_ICMPV6, v4 ? this.config.host : this.config.ipv6!.host, src, 8 + quoted.length);
    p.view.setUint8(p.l4, v4 ? 11 : 3);
    p.frame.set(quoted, p.l4 + 8);
    this.emit(p);
  }

  private icmp(p: InPacket): void {
    const { frame, view, l4, l4Length } = p;
    if (l4Length < 8 || view.getUint8(l4) !== 8 || finish(sum(frame, l4, l4Length)) !== 0) return;
    this.echoRequest(p, p.dst === this.config.host || p.dst === this.config.dns, PROTO_ICMP, 0, this.echo);
  }

  private icmp6(p: Ipv6Packet): void {
    if (p.l4Length < 8 || !l4ChecksumOk(p, PROTO_ICMPV6) || this.ndp!.input(p)) return;
    if (p.view.getUint16(p.l4) === 128 << 8 && !isMulticast6(p.dst)) this.echoRequest(p, this.ndp!.isRouter(p.dst), PROTO_ICMPV6, 129, this.echo6);
  }

  /** An echo request (checksum verified): answered here when `local`, else sent on through NAT's ICMP socket. */
  private echoRequest(p: InPacket, local: boolean, protocol: number, replyType: number, echo: IcmpEcho): void {
    const request = p.frame.subarray(p.l4, p.l4 + p.l4Length);
    if (!local) {
      const host = this.hostAddressOf(p.dst);
      if (host !== null) echo.send(p.src, p.dst, host, request.slice());
      return;
    }
    const reply = new OutPacket(protocol, p.dst, p.src, p.l4Length);
    reply.frame.set(request, reply.l4);
    reply.view.setUint8(reply.l4, replyType); // same identifier, sequence and data
    this.emit(reply);
  }

  private udpIn(p: InPacket): void {
    const { view, l4 } = p;
    if (p.l4Length < 8) return;
    const length = view.getUint16(l4 + 4);
    if (length < 8 || length > p.l4Length || !l4ChecksumOk({ ...p, l4Length: length }, PROTO_UDP)) return;
    const srcPort = view.getUint16(l4);
    const dstPort = view.getUint16(l4 + 2);
    const payload = p.frame.subarray(l4 + 8, l4 + length);
    const { config } = this;
    const { src, dst } = p;
    if (typeof src === 'number' && dstPort === 67) {
      const reply = this.dhcp.handle(payload);
      if (reply) this.put(udpPacket(config.host, 67, 0xffffffff, 68, reply).finalize(BROADCAST_MAC, ROUTER_MAC, this.ipId++));
      return;
    }
    if (typeof src !== 'number' && typeof dst !== 'number' && dstPort === DHCPV6_SERVER_PORT && (isMulticast6(dst) || this.isRouter(dst))) {
      const reply = this.dhcpv6?.handle(payload);
      if (reply) this.emit(udpPacket(ROUTER_LINK_LOCAL, DHCPV6_SERVER_PORT, src, srcPort, reply));
      return;
    }
    if (this.tftp?.owns(dstPort) && sameAddress(dst, this.hostOf(src))) return this.tftp.input(src, srcPort, dstPort, payload.slice());
    if (dstPort === 53 && this.isDns(dst)) {
      if (config.restrict) return;
      void answerDnsQuery(payload.slice(), config.host, config.ipv6?.host).then((answer) => {
        if (answer) this.emit(udpPacket(dst, 53, src, srcPort, answer));
      });
      return;
    }
    const host = this.hostAddressOf(dst);
    if (host !== null) this.udp.fromGuest(src, srcPort, dst, dstPort, formatAddress(host), payload.slice());
  }

  /**
   * The guest address a host forward goes to: its own, else for IPv4 the first DHCP
   * address (dhcpstart), for IPv6 the guest's address in the prefix once seen (null before).
   */
  private guestOf(fwd: HostForward): IpAddress | null {
    if (fwd.guestAddr6 === undefined) return fwd.guestAddr ?? this.config.dhcpStart;
    return fwd.guestAddr6 ?? this.ndp?.guestAddress ?? null;
  }

  /** The address the guest sees a host forward's connections come from: the host address of the guest's family. */
  private forwardPeer(fwd: HostForward): IpAddress {
    const v6 = fwd.guestAddr6 !== undefined;
    if (v6 ? !this.config.ipv6 : !this.config.ipv4) {
      throw new Error(`hostfwd: the guest side of ${hostPortText(fwd.hostAddr, fwd.hostPort)} is IPv${v6 ? 6 : 4}, which ipv${v6 ? 6 : 4}=off turned off`);
    }
    return v6 ? this.config.ipv6!.host : this.config.host;
  }

  /** Starts a host forward (hostPort 0 picks a free port; see forwards for where it listens). */
  async addHostForward(fwd: HostForward): Promise<ActiveForward> {
    const peer = this.forwardPeer(fwd);
    const guestOf = (): IpAddress | null => this.guestOf(fwd);
    let listener: Listener;
    if (fwd.proto === 'tcp') {
      const server: Server = await this.tcp.listen(fwd, peer, guestOf);
      const addr = server.address() as AddressInfo;
      listener = { active: { forward: fwd, address: addr.address, port: addr.port }, close: () => server.close() };
    } else {
      const socket: UdpSocket = createSocket(fwd.hostAddr.includes(':') ? 'udp6' : 'udp4');
      await new Promise<void>((resolve, reject) => {
        socket.once('error', (err) => reject(new Error(`hostfwd: cannot bind ${hostPortText(fwd.hostAddr, fwd.hostPort)}: ${err.message}`)));
        socket.bind(fwd.hostPort, fwd.hostAddr || undefined, () => resolve());
      });
      socket.on('message', (msg, from) => {
        const guest = guestOf();
        if (guest !== null) this.udp.fromHost(socket, from, peer, guest, fwd.guestPort, msg);
      });
      const addr = socket.address();
      listener = {
        active: { forward: fwd, address: addr.address, port: addr.port },
        close: () => {
          this.udp.forgetSocket(socket);
          socket.close();
        },
      };
    }
    this.listeners.push(listener);
    return listener.active;
  }

  /** Stops the host forward listening on proto, address and port; false if there is none. */
  removeHostForward(proto: 'tcp' | 'udp', hostAddr: string, hostPort: number): boolean {
    // Compared as given to addHostForward ("" for every address), in canonical form.
    const canonical = (text: string): string => (text === '' ? '' : text.includes(':') ? formatIpv6(parseIpv6(text)) : formatIpv4(parseIpv4(text)));
    const wanted = canonical(hostAddr);
    const i = this.listeners.findIndex((l) => l.active.forward.proto === proto && l.active.port === hostPort && canonical(l.active.forward.hostAddr) === wanted);
    if (i < 0) return false;
    this.listeners.splice(i, 1)[0]!.close();
    return true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.tcp.close();
    this.closed = true;
    this.udp.close();
    this.tftp?.close();
    this.ndp?.close();
    await this.echo.close();
    await this.echo6.close();
    for (const l of this.listeners.splice(0)) l.close();
  }
}

/** Whether a virtio-net header says the frame's L4 checksum is partial (to be completed) or already verified. */
function vnetHeaderVouchesForChecksum(vnetHdr: Uint8Array): boolean {
  return (vnetHdr[0]! & (VNET_HDR_F_NEEDS_CSUM | VNET_HDR_F_DATA_VALID)) !== 0;
}

/** The virtio-net header of a large IPv4 TCP segment: cut into gsoSize pieces, each one's checksum completed. */
function tcpGsoHeader(packet: OutPacket): Uint8Array {
  const tcpHeader = (packet.view.getUint8(packet.l4 + 12) >> 4) * 4;
  return encodeVnetHeader({
    flags: VNET_HDR_F_NEEDS_CSUM, gsoType: VNET_HDR_GSO_TCPV4, hdrLen: packet.l4 + tcpHeader,
    gsoSize: packet.gsoSize, csumStart: packet.l4, csumOffset: 16,
  });
}
