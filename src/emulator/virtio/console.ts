/**
 * virtio-console (device ID 3) with one port, the console (no MULTIPORT):
 * queue 0 receives (host → guest), queue 1 transmits (guest → host). Linux
 * shows the port as /dev/hvc0.
 *
 * Theory of operation. Transmitted chains go to the character backend at
 * once. Receive buffers the driver makes available are held until input
 * comes: the backend delivers input through the CharSink contract
 * (char-backend.ts), at most canReceive() bytes (the room left in the held
 * buffers), so input is never dropped: it waits in the backend until the
 * guest posts buffers. Each delivery fills held buffers in order and returns
 * every buffer it touched. The configuration space (cols, rows, max_nr_ports,
 * emerg_wr) reads as zeroes: no feature that gives it meaning is offered.
 */
import type { CharBackend, CharSink } from '../devices/char-backend.js';
import { readableBytes, writeToChain } from './chain-io.js';
import type { VirtioDevice, VirtioHost } from './device.js';
import { DEVICE_ID } from './spec.js';
import type { DescriptorChain } from './virtqueue.js';

const RECEIVE_QUEUE = 0;
const QUEUE_SIZE = 128;
const CONFIG_BYTES = 12;

export class VirtioConsole implements VirtioDevice, CharSink {
  readonly name = 'virtio-console';
  readonly deviceId = DEVICE_ID.CONSOLE;
  readonly features = 0n;
  readonly queueSizes = [QUEUE_SIZE, QUEUE_SIZE];
  private host: VirtioHost | null = null;
  /** Receive buffers held for input. */
  private readonly held: DescriptorChain[] = [];

  constructor(private readonly backend: CharBackend) {
    backend.connect(this);
  }

  config(): Uint8Array {
    return new Uint8Array(CONFIG_BYTES);
  }

  start(host: VirtioHost): void {
    this.host = host;
  }

  reset(): void {
    this.host = null;
    this.held.length = 0;
  }

  handle(queue: number, chain: DescriptorChain): void {
    if (queue === RECEIVE_QUEUE) {
      this.held.push(chain);
      this.backend.resume();
      return;
    }
    if (chain.readableBytes > 0) this.backend.write(readableBytes(chain, 0, chain.readableBytes).slice());
    this.host?.complete(chain, 0);
  }

  canReceive(): number {
    return this.held.reduce((room, chain) => room + chain.writableBytes, 0);
  }

  receive(bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length && this.held.length > 0) {
      const chain = this.held.shift()!;
      const n = Math.min(chain.writableBytes, bytes.length - done);
      writeToChain(chain, 0, bytes.subarray(done, done + n));
      done += n;
      this.host?.complete(chain, n);
    }
  }
}
