/**
 * virtio-rng, the entropy device (device ID 4): one request queue, no
 * features, no configuration. Each chain's writable buffers are filled with
 * host randomness (crypto.getRandomValues, at most 64 KiB per request, as
 * the spec lets a device fill less than offered) and returned at once.
 * Device-readable buffers are ignored.
 */
import { getRandomValues } from 'node:crypto';
import { writeToChain } from './chain-io.js';
import type { VirtioDevice, VirtioHost } from './device.js';
import { DEVICE_ID } from './spec.js';
import type { DescriptorChain } from './virtqueue.js';

const QUEUE_SIZE = 64;
/** crypto.getRandomValues fills at most 64 KiB per call. */
const MAX_REQUEST = 65536;

export class VirtioRng implements VirtioDevice {
  readonly name = 'virtio-rng';
  readonly deviceId = DEVICE_ID.ENTROPY;
  readonly features = 0n;
  readonly queueSizes = [QUEUE_SIZE];
  private host: VirtioHost | null = null;

  config(): Uint8Array {
    return new Uint8Array(0);
  }

  start(host: VirtioHost): void {
    this.host = host;
  }

  reset(): void {
    this.host = null;
  }

  handle(_queue: number, chain: DescriptorChain): void {
    const bytes = getRandomValues(new Uint8Array(Math.min(chain.writableBytes, MAX_REQUEST)));
    writeToChain(chain, 0, bytes);
    this.host?.complete(chain, bytes.length);
  }
}
