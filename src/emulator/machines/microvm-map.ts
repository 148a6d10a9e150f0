/**
 * Where things are in the x86-64 microvm machine.
 *
 * Guest-physical memory: RAM from 0 up to at most 3 GiB, and the rest of it
 * from 4 GiB up (microvm-ram.ts): the last GiB below 4 GiB is the hole for the
 * IOAPIC at 0xFEC00000, the local APICs at 0xFEE00000 and future PCI BARs. The
 * top of RAM is bounded by the physical address width the host's KVM reports
 * (CPUID 0x80000008), nothing else. In low RAM the loader puts the boot GDT
 * (0x500), boot_params (0x7000), the boot page tables (0x9000-0xEFFF, see
 * x86/long-mode.ts) and the command line (0x20000); the ACPI tables sit at
 * 0xE0000, in the BIOS area Linux scans for the RSDP, which the e820 map
 * reserves with the EBDA-sized hole below 640 KiB. The kernel's protected-mode
 * part goes at 1 MiB, the initrd at the top of RAM. The virtio-pci devices'
 * BARs start at PCI_MMIO in the hole (tsemu assigns them as firmware would),
 * PCI_BAR_STRIDE apart, device n (in slot n + 1) at PCI_MMIO + n * PCI_BAR_STRIDE.
 *
 * Port space: the in-kernel PIC (0x20, 0xA0) and PIT (0x40-0x43, 0x61) never
 * reach tsemu; tsemu serves the i8042 (0x60, 0x64), the CMOS RTC (0x70-0x71),
 * the ACPI PM1a blocks (0x600, 0x604), the PCI host bridge (0xCF8-0xCFF) and
 * the 16550 COM1 (0x3F8, IRQ 4).
 */
import { PCI_MMIO_WINDOW } from '../x86/acpi.js';

export const MICROVM_MEMORY = {
  BOOT_PARAMS: 0x7000,
  CMDLINE: 0x2_0000,
  LOW_RAM_END: 0x9_fc00,
  ACPI: 0xe_0000,
  BIOS_END: 0x10_0000,
  KERNEL: 0x10_0000,
  /** The end of RAM below the 32-bit hole (3 GiB). */
  LOW_RAM_MAX: 0xc000_0000,
  /** Where RAM beyond LOW_RAM_MAX continues (4 GiB). */
  HIGH_RAM: 0x1_0000_0000,
  /** Three pages KVM may claim on Intel hosts (KVM_SET_TSS_ADDR), in the hole below 4 GiB. */
  KVM_TSS: 0xfffb_d000,
  /** The first virtio-pci BAR, and the distance between devices' BARs. */
  PCI_MMIO: PCI_MMIO_WINDOW.base,
  PCI_BAR_STRIDE: 0x10_0000,
} as const;

export const MICROVM_PORTS = {
  I8042_DATA: 0x60,
  I8042_COMMAND: 0x64,
  RTC: 0x70,
  COM1: 0x3f8,
  PM1A_EVENT: 0x600,
  PM1A_CONTROL: 0x604,
  PCI_CONFIG: 0xcf8,
} as const;

export const MICROVM_IRQ = {
  COM1: 4,
  SCI: 9,
} as const;

/**
 * The ISA IRQs the PCI slots' INTA lines take, as a PC's PCI interrupt links
 * do (device n gets PCI_IRQS[n % 4]; devices beyond four share a line). The
 * machine writes the number into each device's interrupt line register.
 */
export const PCI_IRQS = [10, 11, 5, 7] as const;
