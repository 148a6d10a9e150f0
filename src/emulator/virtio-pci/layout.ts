/**
 * Facts of the virtio 1.x PCI transport ("Virtio Over PCI Bus") that the
 * configuration space, the register BAR and the machines share: PCI ids,
 * capability types, and where tsemu puts each structure in its one memory BAR.
 * Numbers only; no behaviour.
 *
 * The BAR (BAR 0, 32-bit memory, 16 KiB) holds four 4 KiB regions, as QEMU
 * spaces them: the common configuration, the ISR status byte, the device
 * configuration, and the notification area, where queue n's notify address is
 * NOTIFY + n * NOTIFY_MULTIPLIER (queue_notify_off reads n).
 */

export const VIRTIO_PCI_VENDOR = 0x1af4;
/** Modern devices: 0x1040 + the virtio device ID. */
export const VIRTIO_PCI_DEVICE_BASE = 0x1040;
/** Revision 1: a modern-only (non-transitional) device. */
export const VIRTIO_PCI_REVISION = 1;
/** Subsystem ids: the vendor again and QEMU's subsystem device id (drivers ignore them). */
export const VIRTIO_PCI_SUBSYSTEM_ID = 0x1100;

/** PCI class codes (class, subclass, interface) per virtio device ID, as QEMU reports them. */
export const VIRTIO_PCI_CLASS: Readonly<Record<number, number>> = {
  1: 0x02_00_00, // network, ethernet
  2: 0x01_00_00, // mass storage, SCSI
  3: 0x07_80_00, // communication, other
  4: 0x00_ff_00, // unclassified, other
};
export const PCI_CLASS_OTHER = 0xff_00_00;

/** virtio_pci_cap.cfg_type values. */
export const CAP = { COMMON: 1, NOTIFY: 2, ISR: 3, DEVICE: 4, PCI: 5 } as const;
/** PCI capability ID of vendor-specific capabilities (every virtio capability). */
export const PCI_CAP_VENDOR = 0x09;

export const BAR_SIZE = 0x4000;
export const REGION = { COMMON: 0x0000, ISR: 0x1000, DEVICE: 0x2000, NOTIFY: 0x3000, SIZE: 0x1000 } as const;
export const NOTIFY_MULTIPLIER = 4;
/** The common configuration structure's length (virtio 1.1: up to queue_device). */
export const COMMON_LENGTH = 0x38;

/** MSI-X "no vector": what msix_config and queue_msix_vector read on a device without MSI-X. */
export const NO_VECTOR = 0xffff;

/** The guest-physical address of queue `queue`'s notification in a BAR at `barBase`. */
export function notifyAddress(barBase: number, queue: number): number {
  return barBase + REGION.NOTIFY + queue * NOTIFY_MULTIPLIER;
}
