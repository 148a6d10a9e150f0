/**
 * The microvm machine's virtio-pci devices: each device model becomes a
 * VirtioPci in slot n + 1 of the PCI host bridge, with its BAR preset at
 * PCI_MMIO + n * PCI_BAR_STRIDE and memory decoding on (tsemu plays the
 * firmware that assigns BARs), its INTA on PCI_IRQS[n % 4] through a
 * level-triggered KVM_IRQ_LINE line (microvm-intx.ts). Queue notifications
 * ring one ioeventfd doorbell for all devices: KVM signals its eventfd for a
 * guest write at any notify address, the vCPU goes on without an exit, and the
 * main thread drains every queue (an empty one costs a ring index read). One
 * doorbell, not one per device, because each keeps a libuv pool thread in
 * poll(2), and the pool (4 threads) also serves the block layer's file I/O.
 *
 * MMIO that reaches tsemu (reads, writes the doorbell does not take) goes to
 * the device whose BAR decodes the address now: a guest may move a BAR (the
 * sizing protocol, reassignment). The doorbell stays on the firmware address,
 * so after a move notifications take the exit path, which still works.
 * Accesses of 8 bytes split into two 4-byte ones, low first; a read nothing
 * decodes returns all ones and a write vanishes. close() stops the doorbell.
 */
import type { AccessSize } from '../bus/interfaces.js';
import { Doorbell } from '../accel/kvm/eventfd.js';
import type { KvmVm } from '../accel/kvm/kvm.js';
import type { VirtioDevice } from '../virtio/device.js';
import type { GuestRam } from '../virtio/guest-ram.js';
import { VirtioPci } from '../virtio-pci/function.js';
import { BAR_SIZE, notifyAddress } from '../virtio-pci/layout.js';
import type { PciHost } from '../x86/pci-host.js';
import type { LevelIrqLines } from './microvm-intx.js';
import { MICROVM_MEMORY, PCI_IRQS } from './microvm-map.js';

export interface MicrovmPci {
  mmioRead(address: number, data: Uint8Array): void;
  mmioWrite(address: number, data: Uint8Array): void;
  close(): Promise<void>;
}

/** The most virtio-pci devices: slots 1-31 of bus 0. */
export const MAX_PCI_DEVICES = 31;

export function plugVirtioPci(
  host: PciHost,
  vm: KvmVm,
  ram: GuestRam,
  lines: LevelIrqLines,
  factories: readonly (() => VirtioDevice)[],
  onError: (err: Error) => void,
): MicrovmPci {
  if (factories.length > MAX_PCI_DEVICES) throw new Error(`the microvm machine has ${MAX_PCI_DEVICES} PCI slots, not ${factories.length}`);
  const devices = factories.map((factory, n) => {
    const barBase = MICROVM_MEMORY.PCI_MMIO + n * MICROVM_MEMORY.PCI_BAR_STRIDE;
    const irqNumber = PCI_IRQS[n % PCI_IRQS.length]!;
    const pci = new VirtioPci(factory(), { ram, irq: lines.line(irqNumber), irqNumber, barBase, location: `virtio-pci@00:${(n + 1).toString(16).padStart(2, '0')}.0` });
    host.attach(n + 1, 0, pci);
    return { pci, barBase };
  });
  const matches = devices.flatMap(({ pci, barBase }) =>
    Array.from({ length: pci.core.queueCount }, (_, q) => ({ space: 'mmio' as const, address: notifyAddress(barBase, q), length: 2 as const })));
  const doorbell = matches.length === 0 ? undefined : Doorbell.start(vm, 'virtio-pci notify doorbell', matches, () => {
    for (const { pci } of devices) for (let q = 0; q < pci.core.queueCount; q++) pci.core.notify(q);
  }, onError);

  const decode = (address: number): { offset: number; bar: VirtioPci['bar'] } | undefined => {
    for (const { pci } of devices) {
      const w = pci.window();
      if (w && address >= w.base && address < w.base + BAR_SIZE) return { offset: address - w.base, bar: pci.bar };
    }
    return undefined;
  };
  /** Splits an access of `data.length` bytes into 1, 2 or 4-byte pieces and runs `each` on them. */
  const pieces = (data: Uint8Array, each: (at: number, size: AccessSize) => void): void => {
    const size = data.length;
    if (size === 1 || size === 2 || size === 4) each(0, size);
    else if (size === 8) {
      each(0, 4);
      each(4, 4);
    }
  };
  return {
    mmioRead(address, data) {
      const target = decode(address);
      data.fill(0xff);
      if (!target) return;
      pieces(data, (at, size) => {
        const value = target.bar.read(target.offset + at, size);
        for (let i = 0; i < size; i++) data[at + i] = (value >>> (8 * i)) & 0xff;
      });
    },
    mmioWrite(address, data) {
      const target = decode(address);
      if (!target) return;
      pieces(data, (at, size) => {
        let value = 0;
        for (let i = size - 1; i >= 0; i--) value = value * 256 + data[at + i]!;
        target.bar.write(target.offset + at, size, value);
      });
    },
    close: async () => {
      await doorbell?.stop();
    },
  };
}
