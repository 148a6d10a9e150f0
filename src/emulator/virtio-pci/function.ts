/**
 * A virtio-pci device: the PCI configuration space (a PciFunction for the
 * host bridge of x86/pci-host.ts) and the memory BAR behind it (bar.ts), in
 * front of a VirtioCore. Modern only (virtio 1.x "PCI capabilities"):
 * vendor 1af4, device 1040 + the virtio device ID, revision 1.
 *
 * Configuration space. A type-0 header: command (memory decoding, bus
 * master and INTx disable are writable), status (capabilities list; the
 * interrupt status bit follows the INTx line), class by device type, one
 * 32-bit non-prefetchable memory BAR 0 of BAR_SIZE, subsystem ids, the
 * interrupt line (writable; the machine presets the IRQ it wired, as firmware
 * would) and interrupt pin INTA. The capability list from 0x40 holds the
 * virtio capabilities COMMON, NOTIFY (multiplier 4), ISR and DEVICE, all in
 * BAR 0, then PCI_CFG: its bar, offset and length fields are writable and its
 * data field reads and writes the BAR there (1, 2 or 4 bytes; other lengths
 * or bars read 0 and drop writes).
 *
 * The BAR follows the sizing protocol by its write mask alone: writing all
 * ones reads back ~(BAR_SIZE - 1). The machine presets the address (tsemu
 * plays the firmware) and memory decoding; window() tells where the BAR
 * decodes now, or null when decoding is off or the guest is sizing it.
 *
 * INTx: the core's interrupt line (high while the ISR has bits) reaches the
 * machine's line unless the command register's INTx disable bit is set.
 * Writes to read-only fields are dropped; nothing here throws on guest input.
 */
import type { AccessSize, IrqLine, MmioDevice } from '../bus/interfaces.js';
import type { PciFunction } from '../x86/pci-host.js';
import { VirtioCore } from '../virtio/core.js';
import type { VirtioDevice } from '../virtio/device.js';
import type { GuestRam } from '../virtio/guest-ram.js';
import { VirtioPciBar } from './bar.js';
import {
  BAR_SIZE, CAP, COMMON_LENGTH, NOTIFY_MULTIPLIER, PCI_CAP_VENDOR, PCI_CLASS_OTHER, REGION, VIRTIO_PCI_CLASS,
  VIRTIO_PCI_DEVICE_BASE, VIRTIO_PCI_REVISION, VIRTIO_PCI_SUBSYSTEM_ID, VIRTIO_PCI_VENDOR,
} from './layout.js';

const H = {
  COMMAND: 0x04, STATUS: 0x06, REVISION: 0x08, HEADER_TYPE: 0x0e, BAR0: 0x10, SUBSYSTEM_VENDOR: 0x2c,
  SUBSYSTEM_ID: 0x2e, CAPABILITIES: 0x34, INTERRUPT_LINE: 0x3c, INTERRUPT_PIN: 0x3d,
} as const;
const COMMAND_MEMORY = 1 << 1;
const COMMAND_BUS_MASTER = 1 << 2;
const COMMAND_INTX_DISABLE = 1 << 10;
const STATUS_INTERRUPT = 1 << 3;
const STATUS_CAPABILITIES = 1 << 4;
const FIRST_CAP = 0x40;
const CAP_LENGTH = 16;
/** The PCI_CFG capability's fields: bar at +4, offset at +8, length at +12, data at +16. */
const PCI_CFG_CAP_LENGTH = 20;

export interface VirtioPciOptions {
  ram: GuestRam;
  /** The interrupt line INTA drives (the machine's GSI). */
  irq: IrqLine;
  /** The IRQ number the interrupt line register reads (what the machine wired). */
  irqNumber: number;
  /** Where the BAR decodes at reset (the firmware's assignment). */
  barBase: number;
  /** For log lines, e.g. "virtio-pci@00:01.0". */
  location: string;
  log?: (line: string) => void;
}

export class VirtioPci implements PciFunction {
  readonly core: VirtioCore;
  readonly bar: VirtioPciBar;
  private readonly space = new Uint8Array(256);
  private readonly writable = new Uint8Array(256);
  private readonly view = new DataView(this.space.buffer);
  private readonly pciCfg: number;
  private lineHigh = false;

  constructor(readonly device: VirtioDevice, private readonly options: VirtioPciOptions) {
    const intx: IrqLine = { set: (level) => this.setLine(level) };
    this.core = new VirtioCore(device, { ram: options.ram, irq: intx, location: options.location, log: options.log });
    this.bar = new VirtioPciBar(this.core);
    const v = this.view;
    v.setUint16(0, VIRTIO_PCI_VENDOR, true);
    v.setUint16(2, VIRTIO_PCI_DEVICE_BASE + device.deviceId, true);
    v.setUint16(H.COMMAND, COMMAND_MEMORY | COMMAND_BUS_MASTER, true);
    v.setUint16(H.STATUS, STATUS_CAPABILITIES, true);
    v.setUint32(H.REVISION, (((VIRTIO_PCI_CLASS[device.deviceId] ?? PCI_CLASS_OTHER) << 8) | VIRTIO_PCI_REVISION) >>> 0, true);
    v.setUint32(H.BAR0, options.barBase >>> 0, true);
    v.setUint16(H.SUBSYSTEM_VENDOR, VIRTIO_PCI_VENDOR, true);
    v.setUint16(H.SUBSYSTEM_ID, VIRTIO_PCI_SUBSYSTEM_ID, true);
    this.space[H.CAPABILITIES] = FIRST_CAP;
    this.space[H.INTERRUPT_LINE] = options.irqNumber;
    this.space[H.INTERRUPT_PIN] = 1;
    this.mask(H.COMMAND, COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE, 2);
    this.mask(H.BAR0, ~(BAR_SIZE - 1) >>> 0, 4);
    this.mask(H.INTERRUPT_LINE, 0xff, 1);
    let at = FIRST_CAP;
    const caps: [number, number, number, number?][] = [
      [CAP.COMMON, REGION.COMMON, COMMON_LENGTH],
      [CAP.NOTIFY, REGION.NOTIFY, REGION.SIZE, NOTIFY_MULTIPLIER],
      [CAP.ISR, REGION.ISR, 1],
      [CAP.DEVICE, REGION.DEVICE, REGION.SIZE],
    ];
    for (const [type, offset, length, multiplier] of caps) {
      const size = multiplier === undefined ? CAP_LENGTH : CAP_LENGTH + 4;
      this.capability(at, size, type, offset, length, at + size);
      if (multiplier !== undefined) v.setUint32(at + CAP_LENGTH, multiplier, true);
      at += size;
    }
    this.pciCfg = at;
    this.capability(at, PCI_CFG_CAP_LENGTH, CAP.PCI, 0, 0, 0);
    this.mask(at + 4, 0xff, 1);
    this.mask(at + 8, 0xffff_ffff, 4);
    this.mask(at + 12, 0xffff_ffff, 4);
  }

  private capability(at: number, size: number, type: number, offset: number, length: number, next: number): void {
    this.space.set([PCI_CAP_VENDOR, next, size, type, 0], at);
    this.view.setUint32(at + 8, offset, true);
    this.view.setUint32(at + 12, length, true);
  }

  private mask(at: number, bits: number, size: number): void {
    for (let i = 0; i < size; i++) this.writable[at + i] = (bits >>> (8 * i)) & 0xff;
  }

  private get command(): number {
    return this.view.getUint16(H.COMMAND, true);
  }

  private setLine(level: boolean): void {
    this.lineHigh = level;
    this.options.irq.set(level && !(this.command & COMMAND_INTX_DISABLE));
  }

  /** Where BAR 0 decodes now: null while memory decoding is off, or while the guest sizes it. */
  window(): { base: number; size: number; device: MmioDevice } | null {
    const base = this.view.getUint32(H.BAR0, true) & ~0xf;
    if (!(this.command & COMMAND_MEMORY) || base === 0 || base >>> 0 === (~(BAR_SIZE - 1) >>> 0)) return null;
    return { base: base >>> 0, size: BAR_SIZE, device: this.bar };
  }

  configRead(offset: number, size: AccessSize): number {
    if (offset === this.pciCfg + 16) return this.pciCfgAccess(size);
    this.syncStatus();
    let value = 0;
    for (let i = size - 1; i >= 0; i--) value = value * 256 + this.space[offset + i]!;
    return value;
  }

  configWrite(offset: number, size: AccessSize, value: number): void {
    if (offset === this.pciCfg + 16) {
      this.pciCfgAccess(size, value);
      return;
    }
    for (let i = 0; i < size; i++) {
      const m = this.writable[offset + i]!;
      const byte = (value >>> (8 * i)) & 0xff;
      this.space[offset + i] = (this.space[offset + i]! & ~m) | (byte & m);
    }
    if (offset <= H.COMMAND + 1 && offset + size > H.COMMAND) this.setLine(this.lineHigh);
  }

  private syncStatus(): void {
    const status = this.view.getUint16(H.STATUS, true);
    this.view.setUint16(H.STATUS, this.lineHigh ? status | STATUS_INTERRUPT : status & ~STATUS_INTERRUPT, true);
  }

  /** The PCI_CFG window: a read (value undefined) or write of the BAR where the capability points. */
  private pciCfgAccess(size: AccessSize, value?: number): number {
    const bar = this.space[this.pciCfg + 4];
    const offset = this.view.getUint32(this.pciCfg + 8, true);
    const length = this.view.getUint32(this.pciCfg + 12, true);
    if (bar !== 0 || (length !== 1 && length !== 2 && length !== 4) || length > size || offset % length !== 0 || offset + length > BAR_SIZE) return 0;
    if (value === undefined) return this.bar.read(offset, length);
    this.bar.write(offset, length, value & (0xffff_ffff >>> (32 - 8 * length)));
    return 0;
  }
}
