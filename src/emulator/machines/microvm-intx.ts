/**
 * Level-triggered interrupt lines of the microvm machine's PCI slots (INTx),
 * driven through KVM_IRQ_LINE on the VM: the GSI of the in-kernel IOAPIC (and
 * PIC, below 16) is asserted while any device on it holds its line high and
 * deasserted when the last one lowers it, each change one ioctl on the main
 * thread, where the device models run.
 *
 * Why not an irqfd: an irqfd without KVM's resample mode delivers a pulse. On
 * a level-triggered IOAPIC pin (Linux programs PCI INTx level/low), a pulse
 * that arrives while the previous interrupt is still in service is lost, and a
 * virtio device whose ISR gained a bit after the driver read it would wait
 * forever. Resample mode would need a second eventfd and a watching thread per
 * line to learn of the EOI; KVM_IRQ_LINE keeps the exact level the ISR says,
 * costs no thread, and this host's kvm-pvm supports it (every KVM with an
 * in-kernel irqchip does). MSI-X, the faster path, is not offered yet.
 */
import type { IrqLine } from '../bus/interfaces.js';
import type { KvmVm } from '../accel/kvm/kvm.js';

export class LevelIrqLines {
  /** Per GSI, how many device lines are high. */
  private readonly high = new Map<number, number>();

  constructor(private readonly vm: KvmVm) {}

  /** A device's line into `gsi`; lines on one GSI are ORed. */
  line(gsi: number): IrqLine {
    let level = false;
    return {
      set: (next: boolean) => {
        if (next === level) return;
        level = next;
        const before = this.high.get(gsi) ?? 0;
        const after = before + (next ? 1 : -1);
        this.high.set(gsi, after);
        if ((before === 0) !== (after === 0)) this.vm.setIrqLine(gsi, after > 0);
      },
    };
  }
}
