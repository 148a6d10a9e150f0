/**
 * The guests' link-layer addresses, for ARP (IPv4) and NDP (IPv6) alike: MACs are
 * learnt from the guests' frames; a packet for a guest whose MAC is not known yet
 * (a host forward before the guest said anything) waits while a solicitation goes
 * out (an ARP request or a neighbor solicitation, the caller's `solicit`), at most
 * 16 packets per address, and leaves when the answer comes; a solicitation is
 * repeated at most once a second. At most 1024 addresses are remembered and 1024
 * wait. Addresses that need no resolution (broadcast, multicast, anything not a
 * guest's) go at once to the MAC `directMac` gives them.
 */

const MAX_NEIGHBOURS = 1024;
const MAX_WAITING = 16;
const SOLICIT_INTERVAL_MS = 1000;

/** Builds the frames of one packet once the destination MAC is known. */
export type FrameBuilder = (mac: Uint8Array) => Uint8Array[];

interface Waiting {
  frames: FrameBuilder[];
  lastSolicit: number;
}

export class Neighbours<A> {
  private readonly macs = new Map<string | number, Uint8Array>();
  private readonly waiting = new Map<string | number, Waiting>();

  /**
   * @param key identifies an address in the tables
   * @param isNeighbour whether an address may be a guest's (learnt, resolved)
   * @param directMac the MAC of an address that is not a neighbour's (undefined: drop)
   * @param solicit asks the segment for an address's MAC
   * @param put puts a frame on the segment
   */
  constructor(
    private readonly key: (addr: A) => string | number,
    private readonly isNeighbour: (addr: A) => boolean,
    private readonly directMac: (addr: A) => Uint8Array | undefined,
    private readonly solicit: (addr: A) => void,
    private readonly put: (frame: Uint8Array) => void,
  ) {}

  /** Remembers a guest's MAC (from any of its frames) and releases packets that waited for it. */
  learn(addr: A, mac: Uint8Array): void {
    if (!this.isNeighbour(addr)) return;
    const k = this.key(addr);
    const known = this.macs.get(k);
    if (known && known.every((b, i) => b === mac[i])) return;
    if (!known && this.macs.size >= MAX_NEIGHBOURS) return;
    const copy = mac.slice();
    this.macs.set(k, copy);
    const w = this.waiting.get(k);
    if (w) {
      this.waiting.delete(k);
      for (const build of w.frames) for (const frame of build(copy)) this.put(frame);
    }
  }

  /** Sends a packet's frames to `addr` once its MAC is known. */
  deliver(addr: A, build: FrameBuilder): void {
    const neighbour = this.isNeighbour(addr);
    const k = this.key(addr);
    const mac = neighbour ? this.macs.get(k) : this.directMac(addr);
    if (mac) {
      for (const frame of build(mac)) this.put(frame);
      return;
    }
    if (!neighbour) return;
    let w = this.waiting.get(k);
    if (!w) {
      if (this.waiting.size >= MAX_NEIGHBOURS) return;
      w = { frames: [], lastSolicit: 0 };
      this.waiting.set(k, w);
    }
    if (w.frames.length < MAX_WAITING) w.frames.push(build);
    const now = Date.now();
    if (now - w.lastSolicit >= SOLICIT_INTERVAL_MS) {
      w.lastSolicit = now;
      this.solicit(addr);
    }
  }
}
