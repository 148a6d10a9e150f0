/**
 * The memory BAR of a virtio-pci device (layout.ts): the registers the
 * capabilities point at, as an MmioDevice in front of a VirtioCore.
 *
 *   COMMON  0x00 device_feature_select  0x04 device_feature  0x08 driver_feature_select
 *           0x0c driver_feature  0x10 msix_config  0x12 num_queues  0x14 device_status
 *           0x15 config_generation  0x16 queue_select  0x18 queue_size  0x1a queue_msix_vector
 *           0x1c queue_enable  0x1e queue_notify_off  0x20/0x28/0x30 queue_desc/driver/device (64-bit)
 *   ISR     byte 0: the interrupt status; reading it returns the bits and clears them
 *           (which lowers the INTx line)
 *   DEVICE  the device-specific configuration (1, 2 and 4-byte accesses)
 *   NOTIFY  a write of any width at NOTIFY + 4n notifies queue n
 *
 * Fields are accessed at their own width; the 64-bit queue addresses also as
 * two 32-bit halves. A queue's size and addresses change only while it is not
 * enabled; queue_enable takes 1 only (the driver never writes 0). There is no
 * MSI-X: the vector fields read NO_VECTOR and ignore writes. Other widths,
 * read-only fields and unknown offsets ignore writes and read 0. Nothing the
 * guest writes here throws (VirtioCore turns guest faults into needs-reset).
 */
import type { AccessSize, MmioDevice } from '../bus/interfaces.js';
import type { QueueRegisters, VirtioCore } from '../virtio/core.js';
import { NOTIFY_MULTIPLIER, NO_VECTOR, REGION } from './layout.js';

const C = {
  DEVICE_FEATURE_SELECT: 0x00, DEVICE_FEATURE: 0x04, DRIVER_FEATURE_SELECT: 0x08, DRIVER_FEATURE: 0x0c,
  MSIX_CONFIG: 0x10, NUM_QUEUES: 0x12, DEVICE_STATUS: 0x14, CONFIG_GENERATION: 0x15, QUEUE_SELECT: 0x16,
  QUEUE_SIZE: 0x18, QUEUE_MSIX_VECTOR: 0x1a, QUEUE_ENABLE: 0x1c, QUEUE_NOTIFY_OFF: 0x1e,
  QUEUE_DESC: 0x20, QUEUE_DRIVER: 0x28, QUEUE_DEVICE: 0x30,
} as const;

/** The width of each common-configuration field below the queue addresses. */
const WIDTH: Readonly<Record<number, AccessSize>> = {
  [C.DEVICE_FEATURE_SELECT]: 4, [C.DEVICE_FEATURE]: 4, [C.DRIVER_FEATURE_SELECT]: 4, [C.DRIVER_FEATURE]: 4,
  [C.MSIX_CONFIG]: 2, [C.NUM_QUEUES]: 2, [C.DEVICE_STATUS]: 1, [C.CONFIG_GENERATION]: 1, [C.QUEUE_SELECT]: 2,
  [C.QUEUE_SIZE]: 2, [C.QUEUE_MSIX_VECTOR]: 2, [C.QUEUE_ENABLE]: 2, [C.QUEUE_NOTIFY_OFF]: 2,
};

type AddressField = 'desc' | 'driver' | 'device';
const ADDRESSES: ReadonlyArray<readonly [number, AddressField]> = [[C.QUEUE_DESC, 'desc'], [C.QUEUE_DRIVER, 'driver'], [C.QUEUE_DEVICE, 'device']];
const HIGH = 0x1_0000_0000;

/** The 64-bit queue address field at `offset` and which half (0 low, 1 high) a 4-byte access there reaches. */
function addressAt(offset: number, size: AccessSize): { field: AddressField; half: 0 | 1 } | undefined {
  if (size !== 4) return undefined;
  for (const [base, field] of ADDRESSES) {
    if (offset === base) return { field, half: 0 };
    if (offset === base + 4) return { field, half: 1 };
  }
  return undefined;
}

export class VirtioPciBar implements MmioDevice {
  private featureSelect = 0;
  private driverFeatureSelect = 0;
  private queueSelect = 0;

  constructor(readonly core: VirtioCore) {}

  private get queue(): QueueRegisters | undefined {
    return this.core.queueRegisters(this.queueSelect);
  }

  read(offset: number, size: AccessSize): number {
    if (offset < REGION.ISR) return this.readCommon(offset, size);
    if (offset < REGION.DEVICE) {
      if (offset !== REGION.ISR) return 0;
      const bits = this.core.interruptStatus;
      this.core.acknowledgeInterrupt(bits);
      return bits;
    }
    if (offset < REGION.NOTIFY) return this.core.readConfig(offset - REGION.DEVICE, size);
    return 0;
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (offset < REGION.ISR) this.writeCommon(offset, size, value >>> 0);
    else if (offset >= REGION.DEVICE && offset < REGION.NOTIFY) this.core.writeConfig(offset - REGION.DEVICE, size, value);
    else if (offset >= REGION.NOTIFY && offset < REGION.NOTIFY + REGION.SIZE) {
      const queue = (offset - REGION.NOTIFY) / NOTIFY_MULTIPLIER;
      if (Number.isInteger(queue)) this.core.notify(queue);
    }
  }

  private readCommon(offset: number, size: AccessSize): number {
    const address = addressAt(offset, size);
    const q = this.queue;
    if (address) {
      const value = q?.[address.field] ?? 0;
      return address.half === 0 ? value % HIGH : Math.floor(value / HIGH);
    }
    if (WIDTH[offset] !== size) return 0;
    const core = this.core;
    switch (offset) {
      case C.DEVICE_FEATURE_SELECT: return this.featureSelect;
      case C.DEVICE_FEATURE: return core.deviceFeatures(this.featureSelect);
      case C.DRIVER_FEATURE_SELECT: return this.driverFeatureSelect;
      case C.MSIX_CONFIG: return NO_VECTOR;
      case C.NUM_QUEUES: return core.queueCount;
      case C.DEVICE_STATUS: return core.status;
      case C.CONFIG_GENERATION: return core.configGeneration & 0xff;
      case C.QUEUE_SELECT: return this.queueSelect;
      case C.QUEUE_SIZE: return q ? q.size : 0;
      case C.QUEUE_MSIX_VECTOR: return NO_VECTOR;
      case C.QUEUE_ENABLE: return q?.queue ? 1 : 0;
      case C.QUEUE_NOTIFY_OFF: return q ? this.queueSelect : 0;
      default: return 0;
    }
  }

  private writeCommon(offset: number, size: AccessSize, value: number): void {
    const q = this.queue;
    const address = addressAt(offset, size);
    if (address) {
      if (!q || q.queue) return;
      const current = q[address.field];
      q[address.field] = address.half === 0 ? Math.floor(current / HIGH) * HIGH + value : value * HIGH + (current % HIGH);
      return;
    }
    if (WIDTH[offset] !== size) return;
    switch (offset) {
      case C.DEVICE_FEATURE_SELECT: this.featureSelect = value; return;
      case C.DRIVER_FEATURE_SELECT: this.driverFeatureSelect = value; return;
      case C.DRIVER_FEATURE: this.core.setDriverFeatures(this.driverFeatureSelect, value); return;
      case C.DEVICE_STATUS: this.core.writeStatus(value & 0xff); return;
      case C.QUEUE_SELECT: this.queueSelect = value & 0xffff; return;
      case C.QUEUE_SIZE:
        if (q && !q.queue) q.size = value & 0xffff;
        return;
      case C.QUEUE_ENABLE:
        if (q && !q.queue && (value & 1) === 1) this.core.setQueueReady(this.queueSelect, true);
        return;
    }
  }
}
