/**
 * A PCI host bridge with type-1 configuration access on ports 0xCF8-0xCFF
 * (CONFIG_ADDRESS at 0xCF8, 32-bit; CONFIG_DATA at 0xCFC-0xCFF, any width),
 * as a PC chipset offers it, and bus 0 behind it.
 *
 * CONFIG_ADDRESS holds enable (bit 31), bus, device, function and the dword
 * register; a data access reaches function `fn` of the device in slot
 * `device` on bus 0 at register + (port - 0xCFC). With enable clear, on
 * another bus, or where nothing is attached, reads return all ones and
 * writes vanish, which is how a guest finds empty slots. Slot 0 holds the
 * host bridge itself (vendor 1b36, device 0008: QEMU's "PCIe host bridge"
 * ids, class 06 00 00), whose configuration space is read-only.
 *
 * Devices (virtio-pci/function.ts) plug in through PciFunction: 256 bytes
 * of configuration space they serve themselves, so BARs and capabilities stay
 * with the device model; the machine routes their BARs' MMIO itself.
 */
import type { AccessSize, MmioDevice } from '../bus/interfaces.js';

export interface PciFunction {
  /** Reads `size` bytes at `offset` (0-255, naturally aligned) of the configuration space. */
  configRead(offset: number, size: AccessSize): number;
  configWrite(offset: number, size: AccessSize, value: number): void;
}

export const PCI_VENDOR_REDHAT = 0x1b36;
export const PCI_DEVICE_HOST_BRIDGE = 0x0008;

/** A configuration space with only its header's identity fields set, read-only (the host bridge). */
export class FixedPciFunction implements PciFunction {
  private readonly space = new Uint8Array(256);

  constructor(vendor: number, device: number, classCode: number, revision = 0) {
    const v = new DataView(this.space.buffer);
    v.setUint16(0, vendor, true);
    v.setUint16(2, device, true);
    v.setUint32(8, ((classCode << 8) | revision) >>> 0, true);
  }

  configRead(offset: number, size: AccessSize): number {
    let value = 0;
    for (let i = size - 1; i >= 0; i--) value = value * 256 + this.space[offset + i];
    return value;
  }

  configWrite(): void {}
}

const ENABLE = 0x8000_0000;

export class PciHost implements MmioDevice {
  private address = 0;
  private readonly functions = new Map<number, PciFunction>();

  constructor() {
    this.attach(0, 0, new FixedPciFunction(PCI_VENDOR_REDHAT, PCI_DEVICE_HOST_BRIDGE, 0x060000));
  }

  /** Puts `fn` at bus 0, slot `device` (0-31), function `func` (0-7). */
  attach(device: number, func: number, fn: PciFunction): void {
    if (device < 0 || device > 31 || func < 0 || func > 7) throw new RangeError(`PCI: no slot ${device}.${func}`);
    const key = (device << 3) | func;
    if (this.functions.has(key)) throw new Error(`PCI: slot ${device}.${func} is taken`);
    this.functions.set(key, fn);
  }

  /** The function CONFIG_ADDRESS selects, if any. */
  private selected(): PciFunction | undefined {
    const a = this.address;
    if (!(a & ENABLE) || ((a >>> 16) & 0xff) !== 0) return undefined;
    return this.functions.get((a >>> 8) & 0xff);
  }

  read(offset: number, size: AccessSize): number {
    if (offset < 4) return offset === 0 && size === 4 ? this.address >>> 0 : 0xffff_ffff >>> (32 - size * 8);
    const fn = this.selected();
    if (!fn) return 0xffff_ffff >>> (32 - size * 8);
    return fn.configRead((this.address & 0xfc) + (offset - 4), size) >>> 0;
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (offset < 4) {
      if (offset === 0 && size === 4) this.address = value >>> 0;
      return;
    }
    this.selected()?.configWrite((this.address & 0xfc) + (offset - 4), size, value);
  }
}
