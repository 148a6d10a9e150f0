/**
 * The x86-64 `microvm` machine on KVM: guest RAM, the in-kernel irqchip and
 * PIT, the port devices of microvm-map.ts, a bzImage loaded for the 64-bit
 * boot protocol (microvm-boot.ts), and one vCPU thread per CPU.
 *
 * Theory of operation. createMicrovmMachine() opens /dev/kvm (a clear
 * KvmUnavailableError when KVM is missing or unusable), maps guest RAM
 * (microvm-ram.ts: split around the 32-bit hole, KVM slots and zero-copy views
 * of at most 4 GiB), loads the boot images
 * and creates the vCPUs, whose worker threads start first so that their
 * start-up overlaps the rest (vcpu-thread.ts): CPU 0 enters the kernel's 64-bit entry in long mode
 * with RSI = boot_params; the others wait in KVM (wait-for-SIPI) until the
 * guest starts them with INIT/SIPI through its local APIC, as on a PC. The
 * devices are the shared models (the 16550 on the serial backend) plus the
 * PC parts of src/emulator/x86, on a port bus served on the main thread.
 * The UART's interrupt reaches the in-kernel irqchip through an irqfd, and the
 * guest's ACPI S5 write to PM1a control rings a doorbell (an ioeventfd) in the
 * kernel instead of exiting to the device model (accel/kvm/eventfd.ts); other
 * PM1a writes still reach the model. The virtio devices sit on the PCI host
 * bridge as virtio-pci functions (microvm-pci.ts: BARs, level-triggered INTx,
 * a notify doorbell). MMIO no device claims reads as all ones and drops writes
 * (the APICs are in KVM).
 *
 * The machine ends once: ACPI S5 (poweroff, exit 0), a KVM shutdown event
 * (exit 0), a reset request (i8042, KVM reset event, triple fault: 'reboot'),
 * stop() (Ctrl-A x), or a vCPU failing (error, with KVM's reason). `exit`
 * resolves after every vCPU thread has returned and KVM is closed.
 * runMicrovmMachine() boots again after a reboot unless noReboot.
 */
import { MmioBus, type BusAccessSize } from '../bus/mmio-bus.js';
import type { IrqLine } from '../bus/interfaces.js';
import type { CharBackend } from '../devices/char-backend.js';
import { Uart16550 } from '../devices/uart16550.js';
import { Doorbell, irqfdLine } from '../accel/kvm/eventfd.js';
import { KvmSystem, type KvmVm } from '../accel/kvm/kvm.js';
import { trace } from '../accel/kvm/trace.js';
import { prepareKvmVcpuThread, type IoHandlers, type KvmVcpuThread, type ParkedVcpuThread } from '../accel/kvm/vcpu-thread.js';
import type { VcpuEnd } from '../accel/kvm/vcpu-protocol.js';
import { AcpiPmControl, AcpiPmEvents, s5Writes } from '../x86/acpi-pm.js';
import { CmosRtc } from '../x86/cmos-rtc.js';
import { physicalAddressBits, vcpuCpuid } from '../x86/cpuid.js';
import { I8042 } from '../x86/i8042.js';
import { bootSregs } from '../x86/long-mode.js';
import { PciHost } from '../x86/pci-host.js';
import type { VirtioDevice } from '../virtio/device.js';
import type { GuestRam } from '../virtio/guest-ram.js';
import { LevelIrqLines } from './microvm-intx.js';
import { plugVirtioPci, type MicrovmPci } from './microvm-pci.js';
import { endOnce, runMachine, type MachineExit } from './machine-run.js';
import { loadMicrovmBoot, type MicrovmBootLayout } from './microvm-boot.js';
import { MICROVM_IRQ, MICROVM_MEMORY, MICROVM_PORTS } from './microvm-map.js';
import { mapMicrovmRam, microvmRamLayout, type MicrovmRam } from './microvm-ram.js';

export type { MachineExit };

export interface MicrovmConfig {
  ramBytes: number;
  cpus: number;
  /** A bzImage (64-bit boot protocol, 2.12 or later). */
  kernel: Uint8Array;
  initrd?: Uint8Array;
  append?: string;
  serial: CharBackend;
  /** The KVM device node (default /dev/kvm). */
  kvmPath?: string;
  /** virtio devices, made fresh for each boot; device n goes in PCI slot n + 1. */
  virtio?: readonly (() => VirtioDevice)[];
}

export interface MicrovmMachine {
  readonly layout: MicrovmBootLayout;
  start(): void;
  /** Ends the machine (as Ctrl-A x does); `exit` resolves with { kind: 'quit' } unless it had ended already. */
  stop(): void;
  readonly exit: Promise<MachineExit>;
}

const MSR_IA32_MISC_ENABLE = 0x1a0;
const MISC_ENABLE_FAST_STRING = 1;
const MAX_CPUS = 255;

function portDevices(com1Irq: IrqLine, pci: PciHost, config: MicrovmConfig, s5SleepType: number, end: (exit: MachineExit) => void): MmioBus {
  const ports = new MmioBus();
  const i8042 = new I8042(() => end({ kind: 'reboot' }));
  ports.map(MICROVM_PORTS.I8042_DATA, 1, i8042.data, 'i8042 data');
  ports.map(MICROVM_PORTS.I8042_COMMAND, 1, i8042.command, 'i8042 command');
  ports.map(MICROVM_PORTS.RTC, 2, new CmosRtc(), 'cmos rtc');
  ports.map(MICROVM_PORTS.COM1, 8, new Uart16550(com1Irq, config.serial), 'com1');
  ports.map(MICROVM_PORTS.PM1A_EVENT, 4, new AcpiPmEvents(), 'pm1a event');
  ports.map(MICROVM_PORTS.PM1A_CONTROL, 2, new AcpiPmControl(s5SleepType, () => end({ kind: 'poweroff', code: 0 })), 'pm1a control');
  ports.map(MICROVM_PORTS.PCI_CONFIG, 8, pci, 'pci host');
  return ports;
}

/** The eventfd paths into KVM: the UART's irqfd and the S5 doorbell; close() releases them. */
function eventfdWiring(vm: KvmVm, s5SleepType: number, end: (exit: MachineExit) => void): { com1Irq: IrqLine; close(): Promise<void> } {
  const com1Irq = irqfdLine(vm, MICROVM_IRQ.COM1);
  try {
    const s5 = s5Writes(s5SleepType).map((datamatch) => ({ space: 'pio' as const, address: MICROVM_PORTS.PM1A_CONTROL, length: 2 as const, datamatch }));
    const doorbell = Doorbell.start(vm, 'ACPI S5 doorbell', s5, () => end({ kind: 'poweroff', code: 0 }), (err) =>
      end({ kind: 'error', message: `ACPI S5 doorbell: ${err.message}` }));
    return {
      com1Irq,
      close: async () => {
        await doorbell.stop();
        com1Irq.close();
      },
    };
  } catch (err) {
    com1Irq.close();
    throw err;
  }
}

function ioHandlers(ports: MmioBus, pci: MicrovmPci): IoHandlers {
  const allOnes = (size: number): number => 0xffff_ffff >>> (32 - size * 8);
  return {
    portRead: (port, size) => (ports.load(port, size as BusAccessSize) ? ports.lo : allOnes(size)),
    portWrite: (port, size, value) => void ports.store(port, size as BusAccessSize, value, 0),
    mmioRead: (address, data) => pci.mmioRead(address, data),
    mmioWrite: (address, data) => pci.mmioWrite(address, data),
  };
}

function exitFor(end: VcpuEnd): MachineExit {
  switch (end.kind) {
    case 'stopped':
      return { kind: 'quit' };
    case 'shutdown':
      return { kind: 'poweroff', code: 0 };
    case 'reset':
      return { kind: 'reboot' };
    case 'error':
      return { kind: 'error', message: end.message };
  }
}

/** RAM must end inside the guest-physical space the CPU addresses. */
function checkRamTop(ramBytes: number, physicalBits: number): void {
  const top = microvmRamLayout(ramBytes).reduce((end, r) => Math.max(end, r.gpa + r.size), 0);
  const limit = 2 ** physicalBits;
  if (top > limit) {
    const most = limit - MICROVM_MEMORY.HIGH_RAM + MICROVM_MEMORY.LOW_RAM_MAX;
    throw new Error(`-m: this host's CPU addresses ${physicalBits} bits of guest-physical space: the microvm machine takes at most ${most / 1024 ** 3} GiB of RAM`);
  }
}

export function createMicrovmMachine(config: MicrovmConfig): MicrovmMachine {
  const { ramBytes, cpus } = config;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > MAX_CPUS) throw new Error(`-smp: the microvm machine takes 1 to ${MAX_CPUS} CPUs`);
  if (!Number.isSafeInteger(ramBytes) || ramBytes < 2 * 1024 ** 2 || ramBytes % 4096 !== 0) {
    throw new Error('-m: the microvm machine takes 2 MiB or more of RAM in whole pages');
  }
  trace('microvm_create', `ram ${ramBytes}, cpus ${cpus}`);
  const kvm = KvmSystem.open({ path: config.kvmPath });
  let vm: KvmVm | undefined;
  let ram: MicrovmRam | undefined;
  const release = (): void => {
    vm?.close();
    ram?.unmap();
    kvm.close();
  };
  let parked: ParkedVcpuThread[] = [];
  try {
    if (cpus > kvm.maxVcpus()) throw new Error(`-smp: this host's KVM takes at most ${kvm.maxVcpus()} vCPUs`);
    parked = Array.from({ length: cpus }, () => prepareKvmVcpuThread());
    const supported = kvm.supportedCpuid();
    checkRamTop(ramBytes, physicalAddressBits(supported));
    vm = kvm.createVm();
    ram = mapMicrovmRam(vm, ramBytes);
    vm.setTssAddress(MICROVM_MEMORY.KVM_TSS);
    vm.createIrqchip();
    vm.createPit();
    trace('microvm_kvm_ready', `ram ranges ${ram.ranges.map((r) => `0x${r.gpa.toString(16)}+0x${r.size.toString(16)}`).join(' ')}`);
    const layout = loadMicrovmBoot(ram.memory, config);
    trace('microvm_loaded', `kernel 0x${layout.kernel.start.toString(16)}-0x${layout.kernel.end.toString(16)}, initrd ${config.initrd?.length ?? 0} bytes`);
    const vcpus = Array.from({ length: cpus }, (_, id) => {
      const vcpu = vm!.createVcpu(id);
      vcpu.setCpuid(vcpuCpuid(supported, id, cpus));
      vcpu.setMsrs([[MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING]]);
      return vcpu;
    });
    vcpus[0].updateSregs(bootSregs);
    vcpus[0].setRegs({ rip: layout.entry, rsi: layout.bootParams, rflags: 0x2 });
    trace('microvm_vcpus_ready', `cpus ${cpus}, entry 0x${layout.entry.toString(16)}`);
    return assemble(config, kvm, vm, ram.memory, layout, vcpus, parked, release);
  } catch (err) {
    for (const thread of parked) void thread.cancel();
    release();
    throw err;
  }
}

function assemble(
  config: MicrovmConfig,
  kvm: KvmSystem,
  vm: KvmVm,
  ram: GuestRam,
  layout: MicrovmBootLayout,
  vcpus: ReturnType<KvmVm['createVcpu']>[],
  parked: ParkedVcpuThread[],
  release: () => void,
): MicrovmMachine {
  const { ending, end, hasEnded } = endOnce();
  const wiring = eventfdWiring(vm, layout.s5SleepType, end);
  const pciHost = new PciHost();
  let pci: MicrovmPci;
  try {
    pci = plugVirtioPci(pciHost, vm, ram, new LevelIrqLines(vm), config.virtio ?? [], (err) =>
      end({ kind: 'error', message: `virtio-pci doorbell: ${err.message}` }));
  } catch (err) {
    void wiring.close();
    throw err;
  }
  const handlers = ioHandlers(portDevices(wiring.com1Irq, pciHost, config, layout.s5SleepType, end), pci);
  let threads: KvmVcpuThread[] = [];
  let started = false;

  const exit = ending.then(async (reason) => {
    if (!started) await Promise.all(parked.map((thread) => thread.cancel()));
    for (const thread of threads) thread.stop();
    const ends = await Promise.all(threads.map((t) => t.ended));
    await pci.close();
    await wiring.close();
    release();
    const failed = ends.find((e) => e.kind === 'error');
    const exit = failed && reason.kind !== 'error' ? exitFor(failed) : reason;
    trace('microvm_exit', exit.kind);
    return exit;
  });

  return {
    layout,
    exit,
    start() {
      if (started || hasEnded()) return;
      started = true;
      threads = vcpus.map((vcpu, i) => parked[i].run(vcpu, kvm.vcpuMmapSize, handlers));
      for (const thread of threads) void thread.ended.then((e) => end(exitFor(e)));
    },
    stop() {
      end({ kind: 'quit' });
    },
  };
}

/** Boots the machine, again after each guest reboot unless `noReboot`; resolves with how it finally ended. */
export function runMicrovmMachine(
  config: MicrovmConfig,
  options: { noReboot: boolean; onMachine?: (machine: MicrovmMachine) => void },
): Promise<MachineExit> {
  return runMachine(() => createMicrovmMachine(config), options);
}
