/**
 * A hub joins any number of frame backends on one segment: each frame one port
 * puts on the segment is sent to every other port, never back to its sender
 * (a repeater, like QEMU's hub; no MAC learning), with its virtio-net header when it
 * has one. Closing the hub closes every port.
 */
import type { FrameBackend } from './backend.js';

export class Hub {
  private readonly ports: FrameBackend[] = [];
  private closed = false;

  constructor(backends: readonly FrameBackend[] = []) {
    for (const b of backends) this.attach(b);
  }

  attach(port: FrameBackend): void {
    if (this.closed) throw new Error('the hub is closed');
    this.ports.push(port);
    port.onFrame((frame, vnetHdr) => {
      for (const other of this.ports) if (other !== port) other.send(frame, vnetHdr);
    });
  }

  get size(): number {
    return this.ports.length;
  }

  async close(): Promise<void> {
    this.closed = true;
    const ports = this.ports.splice(0);
    await Promise.all(ports.map((p) => p.close()));
  }
}
