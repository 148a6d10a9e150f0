/**
 * ARP for the user network (RFC 826, Ethernet/IPv4 only): answers requests for the
 * router's own addresses (host and DNS, one MAC) and keeps the guests' MACs, learnt
 * from their ARP and IPv4 frames. A packet for a guest whose MAC is not known yet
 * (a host forward before the guest said anything) waits while an ARP request goes
 * out, at most 16 packets per address, and leaves when the answer comes; a request
 * is repeated at most once a second. At most 1024 guest addresses are remembered.
 */
import { BROADCAST_MAC, ETHERTYPE_ARP } from './packet.js';

const MAX_NEIGHBOURS = 1024;
const MAX_WAITING = 16;
const REQUEST_INTERVAL_MS = 1000;
const ARP_LENGTH = 42;

/** Builds the frames of one packet once the destination MAC is known. */
export type FrameBuilder = (mac: Uint8Array) => Uint8Array[];

interface Waiting {
  frames: FrameBuilder[];
  lastRequest: number;
}

export class Arp {
  private readonly macs = new Map<number, Uint8Array>();
  private readonly waiting = new Map<number, Waiting>();

  /**
   * @param routerMac the router's MAC
   * @param isRouter whether an address is one the router answers for
   * @param isNeighbour whether an address may be a guest's (in the network, not the router's)
   * @param put puts a frame on the segment
   */
  constructor(
    private readonly routerMac: Uint8Array,
    private readonly routerAddr: number,
    private readonly isRouter: (addr: number) => boolean,
    private readonly isNeighbour: (addr: number) => boolean,
    private readonly put: (frame: Uint8Array) => void,
  ) {}

  /** Remembers a guest's MAC (from any of its frames) and releases packets that waited for it. */
  learn(addr: number, mac: Uint8Array): void {
    if (!this.isNeighbour(addr)) return;
    const known = this.macs.get(addr);
    if (known && known.every((b, i) => b === mac[i])) return;
    if (!known && this.macs.size >= MAX_NEIGHBOURS) return;
    const copy = mac.slice();
    this.macs.set(addr, copy);
    const w = this.waiting.get(addr);
    if (w) {
      this.waiting.delete(addr);
      for (const build of w.frames) for (const frame of build(copy)) this.put(frame);
    }
  }

  /** An ARP frame from the guest. */
  input(frame: Uint8Array, view: DataView): void {
    if (frame.length < ARP_LENGTH || view.getUint32(14) !== 0x00010800 || view.getUint16(18) !== 0x0604) return;
    const op = view.getUint16(20);
    const senderIp = view.getUint32(28);
    const targetIp = view.getUint32(38);
    this.learn(senderIp, frame.subarray(22, 28));
    if (op === 1 && this.isRouter(targetIp)) this.put(this.message(2, targetIp, frame.subarray(22, 28), senderIp));
  }

  /** Sends a packet's frames to `addr` once its MAC is known; broadcast addresses go at once. */
  deliver(addr: number, build: FrameBuilder): void {
    const mac = this.macs.get(addr) ?? (this.isNeighbour(addr) ? undefined : BROADCAST_MAC);
    if (mac) {
      for (const frame of build(mac)) this.put(frame);
      return;
    }
    let w = this.waiting.get(addr);
    if (!w) {
      if (this.waiting.size >= MAX_NEIGHBOURS) return;
      w = { frames: [], lastRequest: 0 };
      this.waiting.set(addr, w);
    }
    if (w.frames.length < MAX_WAITING) w.frames.push(build);
    const now = Date.now();
    if (now - w.lastRequest >= REQUEST_INTERVAL_MS) {
      w.lastRequest = now;
      this.put(this.message(1, this.routerAddr, new Uint8Array(6), addr));
    }
  }

  private message(op: number, senderIp: number, targetMac: Uint8Array, targetIp: number): Uint8Array {
    const f = new Uint8Array(ARP_LENGTH);
    const v = new DataView(f.buffer);
    f.set(op === 1 ? BROADCAST_MAC : targetMac, 0);
    f.set(this.routerMac, 6);
    v.setUint16(12, ETHERTYPE_ARP);
    v.setUint32(14, 0x00010800);
    v.setUint16(18, 0x0604);
    v.setUint16(20, op);
    f.set(this.routerMac, 22);
    v.setUint32(28, senderIp);
    f.set(targetMac, 32);
    v.setUint32(38, targetIp);
    return f;
  }
}
