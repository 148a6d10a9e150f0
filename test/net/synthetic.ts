/**
 * Test helper: a synthetic guest for the user stack. It builds the guest's frames
 * (checksums included, through the stack's own OutPacket) and collects what the
 * stack sends back, with small readers for the fields tests look at.
 */
import { parseNetdevSpec, type UserNetdev } from '../../src/net/spec.js';
import { OutPacket, PROTO_TCP, PROTO_UDP } from '../../src/net/user/packet.js';
import { ROUTER_MAC, UserStack } from '../../src/net/user/stack.js';

export const GUEST_MAC = new Uint8Array([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
export const GUEST_IP = 0x0a00020f;
export const HOST_IP = 0x0a000202;
export const DNS_IP = 0x0a000203;

export class SyntheticGuest {
  readonly received: Uint8Array[] = [];
  private waiters: (() => void)[] = [];

  private constructor(readonly stack: UserStack) {
    stack.onFrame((frame) => {
      this.received.push(frame);
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static async create(spec = 'user'): Promise<SyntheticGuest> {
    return new SyntheticGuest(await UserStack.create(parseNetdevSpec(spec) as UserNetdev));
  }

  /** An IPv4 frame from the guest with every checksum right; `fill` writes the L4 bytes. */
  ipv4(protocol: number, dst: number, l4Length: number, fill: (view: DataView, at: number) => void, src = GUEST_IP): Uint8Array {
    const p = new OutPacket(protocol, src, dst, l4Length);
    fill(p.view, p.l4);
    return p.finalize(ROUTER_MAC, GUEST_MAC, 1);
  }

  udp(dst: number, srcPort: number, dstPort: number, payload: Uint8Array): Uint8Array {
    return this.ipv4(PROTO_UDP, dst, 8 + payload.length, (v, at) => {
      v.setUint16(at, srcPort);
      v.setUint16(at + 2, dstPort);
      v.setUint16(at + 4, 8 + payload.length);
      new Uint8Array(v.buffer, v.byteOffset, v.byteLength).set(payload, at + 8);
    });
  }

  /** A TCP segment; `options` are raw option bytes (a multiple of 4). */
  tcp(dst: number, srcPort: number, dstPort: number, seq: number, ack: number, flags: number, window: number, data: Uint8Array = new Uint8Array(0), options: Uint8Array = new Uint8Array(0)): Uint8Array {
    return this.ipv4(PROTO_TCP, dst, 20 + options.length + data.length, (v, at) => {
      v.setUint16(at, srcPort);
      v.setUint16(at + 2, dstPort);
      v.setUint32(at + 4, seq >>> 0);
      v.setUint32(at + 8, ack >>> 0);
      v.setUint8(at + 12, ((20 + options.length) / 4) << 4);
      v.setUint8(at + 13, flags);
      v.setUint16(at + 14, window);
      const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      bytes.set(options, at + 20);
      bytes.set(data, at + 20 + options.length);
    });
  }

  send(frame: Uint8Array): void {
    this.stack.send(frame);
  }

  /** Waits (generously) for a frame the predicate accepts and removes it from `received`. */
  async next(accept: (f: Frame) => boolean, what = 'a frame', timeoutMs = 20_000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.received.findIndex((f) => accept(new Frame(f)));
      if (i >= 0) return new Frame(this.received.splice(i, 1)[0]!);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} from the stack`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): Promise<void> {
    return this.stack.close();
  }
}

/** Field readers over a frame the stack sent. */
export class Frame {
  readonly view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get ethertype(): number { return this.view.getUint16(12); }
  get protocol(): number { return this.view.getUint8(23); }
  get src(): number { return this.view.getUint32(26); }
  get dst(): number { return this.view.getUint32(30); }
  get l4(): number { return 14 + (this.view.getUint8(14) & 15) * 4; }
  get srcPort(): number { return this.view.getUint16(this.l4); }
  get dstPort(): number { return this.view.getUint16(this.l4 + 2); }
  get seq(): number { return this.view.getUint32(this.l4 + 4); }
  get ack(): number { return this.view.getUint32(this.l4 + 8); }
  get tcpFlags(): number { return this.view.getUint8(this.l4 + 13); }
  get window(): number { return this.view.getUint16(this.l4 + 14); }
  get tcpHeaderLength(): number { return (this.view.getUint8(this.l4 + 12) >> 4) * 4; }
  get tcpData(): Uint8Array { return this.bytes.subarray(this.l4 + this.tcpHeaderLength, 14 + this.view.getUint16(16)); }
  get udpPayload(): Uint8Array { return this.bytes.subarray(this.l4 + 8, this.l4 + this.view.getUint16(this.l4 + 4)); }
  isTcp(flags?: number): boolean { return this.ethertype === 0x0800 && this.protocol === PROTO_TCP && (flags === undefined || this.tcpFlags === flags); }
}
