/**
 * ARP for the user network (RFC 826, Ethernet/IPv4 only): answers requests for the
 * router's own addresses (host and DNS, one MAC) and keeps the guests' MACs, learnt
 * from their ARP and IPv4 frames (neighbours.ts: packets for an unknown guest wait
 * for the answer to an ARP request; broadcast addresses go at once).
 */
import { Neighbours, type FrameBuilder } from './neighbours.js';
import { BROADCAST_MAC, ETHERTYPE_ARP } from './packet.js';

const ARP_LENGTH = 42;

export class Arp {
  private readonly neighbours: Neighbours<number>;

  /**
   * @param routerMac the router's MAC
   * @param isRouter whether an address is one the router answers for
   * @param isNeighbour whether an address may be a guest's (in the network, not the router's)
   * @param put puts a frame on the segment
   */
  constructor(
    private readonly routerMac: Uint8Array,
    routerAddr: number,
    private readonly isRouter: (addr: number) => boolean,
    isNeighbour: (addr: number) => boolean,
    private readonly put: (frame: Uint8Array) => void,
  ) {
    this.neighbours = new Neighbours<number>((addr) => addr, isNeighbour, () => BROADCAST_MAC,
      (addr) => put(this.message(1, routerAddr, new Uint8Array(6), addr)), put);
  }

  /** Remembers a guest's MAC (from any of its frames) and releases packets that waited for it. */
  learn(addr: number, mac: Uint8Array): void {
    this.neighbours.learn(addr, mac);
  }

  /** Sends a packet's frames to `addr` once its MAC is known; broadcast addresses go at once. */
  deliver(addr: number, build: FrameBuilder): void {
    this.neighbours.deliver(addr, build);
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
