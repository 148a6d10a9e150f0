/**
 * The virtio-mmio transport, version 2 (modern), as an MmioDevice: the
 * register window the virt machine maps at each virtio_mmio slot, in front of
 * a VirtioCore. Registers are 32-bit and must be read and written 32 bits wide;
 * the configuration space from 0x100 on takes 1, 2 and 4-byte accesses.
 *
 *   0x000 MagicValue "virt"   0x004 Version 2      0x008 DeviceID   0x00c VendorID
 *   0x010 DeviceFeatures      0x014 DeviceFeaturesSel
 *   0x020 DriverFeatures      0x024 DriverFeaturesSel
 *   0x030 QueueSel            0x034 QueueNumMax    0x038 QueueNum   0x044 QueueReady
 *   0x050 QueueNotify         0x060 InterruptStatus  0x064 InterruptACK
 *   0x070 Status              0x080/0x084 QueueDesc  0x090/0x094 QueueDriver
 *   0x0a0/0x0a4 QueueDevice   0x0fc ConfigGeneration  0x100+ device configuration
 *
 * A queue's size and addresses can only change while it is not ready. Writes
 * to read-only registers, other widths and unknown offsets are ignored; reads
 * of them return 0. Nothing the guest writes here can throw (VirtioCore turns
 * guest faults into the needs-reset state).
 *
 * As a ShadowSource (vcpu/mmio-shadow.ts) the transport tells a vCPU thread
 * what it may do without the main thread: read InterruptStatus (reading has
 * no side effects), acknowledge it through InterruptACK (clearable: where the
 * machine keeps the core's interrupt status in the shadow itself, the vCPU
 * thread clears the bits and drives the line), and post QueueNotify stores (a
 * notification's effects reach the driver later, through the used ring and
 * an interrupt, by the virtio spec).
 */
import type { AccessSize, MmioDevice } from '../bus/interfaces.js';
import type { VirtioCore, QueueRegisters } from './core.js';

const MAGIC = 0x7472_6976;
const VERSION = 2;
/** The vendor ID QEMU reports ("QEMU" as little-endian ASCII); drivers do not check it. */
const VENDOR_ID = 0x554d_4551;
const CONFIG_BASE = 0x100;

/** InterruptStatus and InterruptACK: the status register and the one whose stores clear its bits. */
export const VIRTIO_MMIO_INTERRUPT = { status: 0x060, acknowledge: 0x064 } as const;

const R = {
  MAGIC: 0x000, VERSION: 0x004, DEVICE_ID: 0x008, VENDOR_ID: 0x00c,
  DEVICE_FEATURES: 0x010, DEVICE_FEATURES_SEL: 0x014, DRIVER_FEATURES: 0x020, DRIVER_FEATURES_SEL: 0x024,
  QUEUE_SEL: 0x030, QUEUE_NUM_MAX: 0x034, QUEUE_NUM: 0x038, QUEUE_READY: 0x044, QUEUE_NOTIFY: 0x050,
  INTERRUPT_STATUS: VIRTIO_MMIO_INTERRUPT.status, INTERRUPT_ACK: VIRTIO_MMIO_INTERRUPT.acknowledge, STATUS: 0x070,
  QUEUE_DESC_LOW: 0x080, QUEUE_DESC_HIGH: 0x084, QUEUE_DRIVER_LOW: 0x090, QUEUE_DRIVER_HIGH: 0x094,
  QUEUE_DEVICE_LOW: 0x0a0, QUEUE_DEVICE_HIGH: 0x0a4, CONFIG_GENERATION: 0x0fc,
} as const;

type AddressField = 'desc' | 'driver' | 'device';
const ADDRESS_REGISTERS: Record<number, [AddressField, 'low' | 'high']> = {
  [R.QUEUE_DESC_LOW]: ['desc', 'low'], [R.QUEUE_DESC_HIGH]: ['desc', 'high'],
  [R.QUEUE_DRIVER_LOW]: ['driver', 'low'], [R.QUEUE_DRIVER_HIGH]: ['driver', 'high'],
  [R.QUEUE_DEVICE_LOW]: ['device', 'low'], [R.QUEUE_DEVICE_HIGH]: ['device', 'high'],
};

const HIGH = 0x1_0000_0000;

function setHalf(current: number, half: 'low' | 'high', value: number): number {
  const low = current % HIGH;
  const high = Math.floor(current / HIGH);
  return half === 'low' ? high * HIGH + (value >>> 0) : (value >>> 0) * HIGH + low;
}

export class VirtioMmio implements MmioDevice {
  /** Shadowed registers: every word up to InterruptStatus. */
  readonly peekable = R.INTERRUPT_STATUS / 4 + 1;
  readonly stride = 4;
  readonly clearable = VIRTIO_MMIO_INTERRUPT;
  private featuresSel = 0;
  private driverFeaturesSel = 0;
  private queueSel = 0;

  constructor(readonly core: VirtioCore) {}

  private get queue(): QueueRegisters | undefined {
    return this.core.queueRegisters(this.queueSel);
  }

  peek(offset: number): number {
    return offset === R.INTERRUPT_STATUS ? this.core.interruptStatus : -1;
  }

  storeKeepsPeeks(offset: number): boolean {
    return offset === R.QUEUE_NOTIFY;
  }

  read(offset: number, size: AccessSize): number {
    if (offset >= CONFIG_BASE) return this.core.readConfig(offset - CONFIG_BASE, size);
    if (size !== 4) return 0;
    const core = this.core;
    switch (offset) {
      case R.MAGIC: return MAGIC;
      case R.VERSION: return VERSION;
      case R.DEVICE_ID: return core.device.deviceId;
      case R.VENDOR_ID: return VENDOR_ID;
      case R.DEVICE_FEATURES: return core.deviceFeatures(this.featuresSel);
      case R.QUEUE_NUM_MAX: return core.maxQueueSize(this.queueSel);
      case R.QUEUE_READY: return this.queue?.queue ? 1 : 0;
      case R.INTERRUPT_STATUS: return core.interruptStatus;
      case R.STATUS: return core.status;
      case R.CONFIG_GENERATION: return core.configGeneration;
      default: return 0;
    }
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (offset >= CONFIG_BASE) {
      this.core.writeConfig(offset - CONFIG_BASE, size, value);
      return;
    }
    if (size !== 4) return;
    const core = this.core;
    switch (offset) {
      case R.DEVICE_FEATURES_SEL: this.featuresSel = value >>> 0; return;
      case R.DRIVER_FEATURES_SEL: this.driverFeaturesSel = value >>> 0; return;
      case R.DRIVER_FEATURES: core.setDriverFeatures(this.driverFeaturesSel, value); return;
      case R.QUEUE_SEL: this.queueSel = value >>> 0; return;
      case R.QUEUE_NUM: {
        const q = this.queue;
        if (q && !q.queue) q.size = value >>> 0;
        return;
      }
      case R.QUEUE_READY: core.setQueueReady(this.queueSel, (value & 1) === 1); return;
      case R.QUEUE_NOTIFY: core.notify(value & 0xffff); return;
      case R.INTERRUPT_ACK: core.acknowledgeInterrupt(value); return;
      case R.STATUS: core.writeStatus(value & 0xff); return;
    }
    const address = ADDRESS_REGISTERS[offset];
    const q = this.queue;
    if (address && q && !q.queue) q[address[0]] = setHalf(q[address[0]], address[1], value);
  }
}
