/**
 * The multicast socket backend, QEMU's `-netdev socket,mcast=GROUP:PORT[,localaddr=ADDR]`:
 * every backend on the segment sends each Ethernet frame as one UDP datagram (no
 * header) to the multicast group and port, and takes every datagram arriving there
 * as a frame, so any number of tsemu and QEMU instances on the host share a segment.
 *
 * Two sockets: the receiver is bound to GROUP:PORT with SO_REUSEADDR (several
 * backends on one host share the port) and joins the group on the interface of
 * ADDR (any interface without localaddr=); the sender is bound to an ephemeral port
 * on ADDR, with multicast loopback on (so backends on this host hear it) and a TTL
 * of 1 (the group never leaves the local link). Datagrams from our own sender's
 * address and port are our frames coming back through loopback and are dropped, so
 * a hub never hears its own frames twice. Short datagrams are dropped.
 */
import { createSocket, type Socket } from 'node:dgram';
import { MAX_FRAME, MIN_FRAME, type FrameBackend, type FrameHandler } from './backend.js';
import type { UdpAddress } from './dgram.js';

function bind(socket: Socket, port: number, host: string | undefined, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    socket.once('error', (err) => reject(new Error(`socket mcast: cannot bind ${what}: ${err.message}`)));
    socket.bind(port, host, () => {
      socket.removeAllListeners('error');
      socket.on('error', () => {});
      resolve();
    });
  });
}

export class McastBackend implements FrameBackend {
  readonly name: string;
  private handler: FrameHandler = () => {};
  private closed = false;

  private constructor(private readonly receiver: Socket, private readonly sender: Socket, private readonly group: UdpAddress) {
    this.name = `mcast ${group.host}:${group.port}`;
    const own = sender.address();
    receiver.on('message', (msg, from) => {
      if (from.port === own.port && (own.address === '0.0.0.0' || from.address === own.address)) return;
      if (msg.length >= MIN_FRAME) this.handler(new Uint8Array(msg));
    });
  }

  /** Joins the group (an IPv4 multicast address) on the interface of `localAddr` (every interface when absent). */
  static async open(group: UdpAddress, localAddr?: string): Promise<McastBackend> {
    const receiver = createSocket({ type: 'udp4', reuseAddr: true });
    const sender = createSocket('udp4');
    try {
      await bind(receiver, group.port, group.host, `${group.host}:${group.port}`);
      receiver.addMembership(group.host, localAddr);
      await bind(sender, 0, localAddr, localAddr ?? '*');
      if (localAddr !== undefined) sender.setMulticastInterface(localAddr);
      sender.setMulticastLoopback(true);
      sender.setMulticastTTL(1);
    } catch (err) {
      receiver.close();
      sender.close();
      throw err instanceof Error && err.message.startsWith('socket mcast') ? err
        : new Error(`socket mcast: cannot join ${group.host} on ${localAddr ?? 'any interface'}: ${(err as Error).message}`);
    }
    return new McastBackend(receiver, sender, group);
  }

  onFrame(handler: FrameHandler): void {
    this.handler = handler;
  }

  send(frame: Uint8Array): void {
    if (this.closed || frame.length < MIN_FRAME || frame.length > MAX_FRAME) return;
    this.sender.send(frame, this.group.port, this.group.host);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([this.receiver, this.sender].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}
