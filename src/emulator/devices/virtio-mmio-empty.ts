/**
 * An empty virtio-mmio slot: what the virt machine places at each of its
 * virtio-mmio addresses that holds no device, so a kernel probing the device
 * tree's virtio_mmio nodes finds "no device here" (device ID 0) instead of an
 * access fault. Per the virtio spec's MMIO transport: MagicValue (0x000)
 * reads "virt", Version (0x004) 2, DeviceID (0x008) 0, VendorID (0x00c) 0;
 * every other register reads 0 and writes are ignored.
 */
import type { AccessSize, MmioDevice } from '../bus/interfaces.js';

const MAGIC = 0x7472_6976; // "virt", little-endian
const VERSION = 2;

export class EmptyVirtioSlot implements MmioDevice {
  read(offset: number, size: AccessSize): number {
    if (size !== 4) return 0;
    if (offset === 0x000) return MAGIC;
    if (offset === 0x004) return VERSION;
    return 0;
  }

  write(): void {}
}
