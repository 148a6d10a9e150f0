/**
 * UDP NAT: each guest flow (guest address and port to a destination address and
 * port, IPv4 or IPv6) gets its own host UDP socket of that family; the guest's
 * datagrams are sent from it to the destination (the user network's host address
 * means the host's 127.0.0.1, its IPv6 host address the host's ::1), and
 * datagrams that come back are delivered to the guest as coming from the address
 * and port it wrote to. A UDP host forward is one host socket listening on the
 * forward's address; each host peer that writes to it becomes a flow whose guest
 * side is a port of the host address, so the guest's replies go back to that peer.
 *
 * Flows expire after 60 s without traffic (a sweep every 10 s); at most 1024 flows
 * are open at once (new ones beyond are dropped, the guest just sees no answer).
 */
import { createSocket, type Socket } from 'node:dgram';
import { addressKey, type IpAddress } from './ip-address.js';
import { OutPacket, PROTO_UDP } from './packet.js';

const IDLE_MS = 60_000;
const SWEEP_MS = 10_000;
const MAX_FLOWS = 1024;

/** What the UDP layer needs from the stack. */
export interface UdpOutput {
  emit(packet: OutPacket): void;
}

interface Flow {
  socket: Socket;
  /** Owned by the flow (closed with it) or shared (a host forward's listener). */
  owned: boolean;
  hostAddr: string;
  hostPort: number;
  guestAddr: IpAddress;
  guestPort: number;
  /** The address and port the guest sees the other side as. */
  peerAddr: IpAddress;
  peerPort: number;
  lastUsed: number;
}

/** Builds a UDP datagram to the guest. */
export function udpPacket(src: IpAddress, srcPort: number, dst: IpAddress, dstPort: number, payload: Uint8Array): OutPacket {
  const p = new OutPacket(PROTO_UDP, src, dst, 8 + payload.length);
  p.view.setUint16(p.l4, srcPort);
  p.view.setUint16(p.l4 + 2, dstPort);
  p.view.setUint16(p.l4 + 4, 8 + payload.length);
  p.frame.set(payload, p.l4 + 8);
  return p;
}

export class UdpNat {
  private readonly flows = new Map<string, Flow>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly out: UdpOutput) {
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  private key(guestAddr: IpAddress, guestPort: number, peerAddr: IpAddress, peerPort: number): string {
    return `${addressKey(guestAddr)}:${guestPort}>${addressKey(peerAddr)}:${peerPort}`;
  }

  /** A datagram from the guest to peerAddr:peerPort, which the host reaches at hostAddr. */
  fromGuest(guestAddr: IpAddress, guestPort: number, peerAddr: IpAddress, peerPort: number, hostAddr: string, payload: Uint8Array): void {
    const key = this.key(guestAddr, guestPort, peerAddr, peerPort);
    let flow = this.flows.get(key);
    if (!flow) {
      if (this.flows.size >= MAX_FLOWS) return;
      const socket = createSocket(hostAddr.includes(':') ? 'udp6' : 'udp4');
      flow = { socket, owned: true, hostAddr, hostPort: peerPort, guestAddr, guestPort, peerAddr, peerPort, lastUsed: 0 };
      const f = flow;
      socket.on('message', (msg) => {
        f.lastUsed = Date.now();
        this.out.emit(udpPacket(f.peerAddr, f.peerPort, f.guestAddr, f.guestPort, msg));
      });
      socket.on('error', () => this.drop(key));
      this.flows.set(key, flow);
    }
    flow.lastUsed = Date.now();
    flow.socket.send(payload, flow.hostPort, flow.hostAddr, () => {});
  }

  /** A host forward's listener received `msg` from a host peer: deliver it to the guest. */
  fromHost(socket: Socket, from: { address: string; port: number }, peerAddr: IpAddress, guestAddr: IpAddress, guestPort: number, msg: Uint8Array): void {
    const key = this.key(guestAddr, guestPort, peerAddr, from.port);
    let flow = this.flows.get(key);
    if (!flow) {
      if (this.flows.size >= MAX_FLOWS) return;
      flow = { socket, owned: false, hostAddr: from.address, hostPort: from.port, guestAddr, guestPort, peerAddr, peerPort: from.port, lastUsed: 0 };
      this.flows.set(key, flow);
    }
    flow.lastUsed = Date.now();
    this.out.emit(udpPacket(peerAddr, from.port, guestAddr, guestPort, msg));
  }

  /** Forgets the flows that go through a shared socket (a host forward being removed). */
  forgetSocket(socket: Socket): void {
    for (const [key, flow] of this.flows) if (flow.socket === socket) this.flows.delete(key);
  }

  private drop(key: string): void {
    const flow = this.flows.get(key);
    if (!flow) return;
    this.flows.delete(key);
    if (flow.owned) flow.socket.close();
  }

  private sweep(): void {
    const limit = Date.now() - IDLE_MS;
    for (const [key, flow] of this.flows) if (flow.lastUsed < limit) this.drop(key);
  }

  get size(): number {
    return this.flows.size;
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const key of [...this.flows.keys()]) this.drop(key);
  }
}
