/**
 * The RISC-V `virt` machine assembled: guest RAM, the devices of virt-map.ts,
 * the device tree, the boot images, and one vCPU thread per hart.
 *
 * Theory of operation. createVirtMachine() builds one boot of the machine:
 * a shared WebAssembly.Memory (layout.ts) with the kernel, initrd, FDT (and
 * firmware) loaded, the main-thread devices on an MMIO bus (UART on the
 * serial backend, sifive_test, goldfish RTC, virtio-mmio; the CLINT and the
 * PLIC keep their state in shared memory and are served on the vCPU threads,
 * while the devices on the main thread drive the PLIC's wires; the vCPU
 * threads also answer the UART's side-effect-free reads and the virtio-mmio
 * slots' InterruptStatus from register shadows, serve the slots'
 * InterruptACK (each slot's interrupt status lives in its shadow) and post
 * console bytes and queue notifications, vcpu/mmio-shadow.ts), and the HSM
 * words set for boot:
 *
 *   tsemu's SBI (default): hart 0 START_PENDING at the kernel entry with
 *     a1 = FDT, the other harts STOPPED until the kernel's HSM hart_start;
 *   --bios firmware: every hart START_PENDING in M-mode at the firmware entry
 *     (a0 = hart id, a1 = FDT, a2 = fw_dynamic info); the firmware picks the
 *     boot hart. --bios none: the same at the kernel entry (a2 = 0).
 *
 * start() starts the vCPU threads and the mailbox server that runs their MMIO
 * and SBI console/reset requests on the main thread. The machine ends once:
 * guest poweroff (sifive_test or SBI SRST shutdown), reboot request, stop()
 * (Ctrl-A x), or a vCPU thread failing. `exit` resolves with the reason after
 * every vCPU thread has returned. runVirtMachine() boots again after a reboot
 * unless noReboot, with fresh RAM and devices, on the same serial backend.
 *
 * Exit codes: poweroff 0, sifive_test fail its code, SRST shutdown with
 * reason "system failure" 1, host error 1.
 */
import type { GuestMemory } from '../bus/interfaces.js';
import { MmioBus, type BusAccessSize } from '../bus/mmio-bus.js';
import type { CharBackend } from '../devices/char-backend.js';
import { Clint } from '../devices/aclint.js';
import { GoldfishRtc } from '../devices/goldfish-rtc.js';
import { Plic, plicStateBytes } from '../devices/plic.js';
import { SifiveTest, type TestFinisherEvent } from '../devices/sifive-test.js';
import { Uart16550 } from '../devices/uart16550.js';
import { EmptyVirtioSlot } from '../devices/virtio-mmio-empty.js';
import { VirtioCore } from '../virtio/core.js';
import type { VirtioDevice } from '../virtio/device.js';
import type { GuestRam } from '../virtio/guest-ram.js';
import { VIRTIO_MMIO_INTERRUPT, VirtioMmio } from '../virtio/mmio.js';
import { writeChosen } from '../fdt/fdt-query.js';
import { parseFdt } from '../fdt/fdt-reader.js';
import { serializeFdt } from '../fdt/fdt-writer.js';
import type { FdtTree } from '../fdt/fdt-node.js';
import { loadBootImages, type BootLayout, type InitrdRange } from '../loader/boot.js';
import type { EngineName } from '../riscv/engine.js';
import { JUMP_CACHE_BASE, MAX_HARTS, RAM_GPA_BASE, RAM_HOST_BASE, memoryPagesFor } from '../riscv/layout.js';
import { SRST_REASON, SRST_TYPE } from '../riscv/sbi/constants.js';
import { HSM, HartControl } from '../vcpu/hart-control.js';
import { MailboxOp, MailboxServer, STATUS_FAILED, STATUS_OK, type MailboxRequest } from '../vcpu/mailbox.js';
import { SHADOW_END, SharedStatus, ShadowedLine, ShadowWriter, type ShadowWindow } from '../vcpu/mmio-shadow.js';
import { startVcpuThread, type VcpuThread } from '../vcpu/vcpu-thread.js';
import { buildVirtFdt } from './virt-fdt.js';
import { endOnce, flatGuestRam, runMachine, type MachineExit } from './machine-run.js';
import {
  VIRT_CLINT, VIRT_IRQ, VIRT_PLIC_MAX_PRIORITY, VIRT_PLIC_NDEV, VIRT_RTC, VIRT_TEST, VIRT_UART0, VIRT_VIRTIO_COUNT, virtPlicRegion,
  virtioSlotRegion,
} from './virt-map.js';

export type { MachineExit };

/** Where the PLIC's state lives in the machine-shared area (after the register shadows). */
const VIRT_PLIC_STATE = SHADOW_END;
if (VIRT_PLIC_STATE + plicStateBytes(MAX_HARTS, VIRT_PLIC_NDEV) > JUMP_CACHE_BASE) throw new Error('the PLIC state does not fit in the machine-shared area');

/** The ISA the harts implement, as the device tree states it. */
export const VIRT_ISA = 'rv64imafdc_zicntr_zicsr_zifencei';

export interface VirtMachineConfig {
  ramBytes: number;
  harts: number;
  engine: EngineName;
  kernel: Uint8Array;
  initrd?: Uint8Array;
  append?: string;
  /** A device tree blob to use instead of the generated one (its /chosen gets bootargs and the initrd). */
  dtb?: Uint8Array;
  /**
   * M-mode firmware (OpenSBI fw_dynamic.bin); 'none': no firmware and no SBI, the harts
   * start in M-mode at the kernel entry (a0 = hart id, a1 = FDT); absent: tsemu's SBI.
   */
  bios?: Uint8Array | 'none';
  serial: CharBackend;
  /**
   * Virtio device models, made afresh for each boot. As on QEMU, the first takes the highest
   * virtio-mmio slot (the device tree lists the slots highest first, so the guest finds it first).
   */
  virtio?: readonly (() => VirtioDevice)[];
}

export interface VirtMachine {
  /** Where the boot images went (for messages and tests). */
  readonly layout: BootLayout;
  /** The device tree blob as loaded in guest RAM. */
  deviceTree(): Uint8Array;
  start(): void;
  /** Ends the machine (as Ctrl-A x does); `exit` resolves with { kind: 'quit' } unless it had ended already. */
  stop(): void;
  readonly exit: Promise<MachineExit>;
}

/** The device tree the machine boots with, as a blob, for an initrd range. */
export function virtDeviceTree(config: Omit<VirtMachineConfig, 'serial' | 'kernel' | 'engine'>, initrd?: InitrdRange): Uint8Array {
  const tree: FdtTree = config.dtb
    ? parseFdt(config.dtb)
    : buildVirtFdt({ ramSize: config.ramBytes, harts: config.harts, isa: VIRT_ISA, virtioSlots: VIRT_VIRTIO_COUNT });
  writeChosen(tree, { bootargs: config.append, initrdStart: initrd?.start, initrdEnd: initrd?.end });
  return serializeFdt(tree);
}

function exitForFinisher(event: TestFinisherEvent): MachineExit {
  return event.kind === 'reset' ? { kind: 'reboot' } : { kind: 'poweroff', code: event.code };
}

/**
 * The virt board's PLIC: its contexts drive each hart's MEIP (M-mode) and SEIP (S-mode) bits. With `memory`
 * its state is VIRT_PLIC_STATE there, shared with the vCPU threads' PLICs (which serve its registers).
 */
export function virtPlic(harts: number, control: HartControl, memory?: WebAssembly.Memory): Plic {
  return new Plic({
    harts,
    ndev: VIRT_PLIC_NDEV,
    maxPriority: VIRT_PLIC_MAX_PRIORITY,
    output: (hart, mode, level) => control.externalInterrupt(hart, mode, level),
    state: memory && { memory, base: VIRT_PLIC_STATE },
  });
}

/**
 * The main-thread devices of virt-map.ts on an MMIO bus (the CLINT is served on the vCPU threads),
 * and the windows of those with a register shadow in `memory` (the UART, then the virtio-mmio slots in use).
 */
function virtDevices(
  memory: WebAssembly.Memory,
  harts: number,
  serial: CharBackend,
  control: HartControl,
  end: (exit: MachineExit) => void,
  ram: GuestRam,
  virtio: readonly (() => VirtioDevice)[],
): { bus: MmioBus; shadows: ShadowWindow[] } {
  const plic = virtPlic(harts, control, memory);
  const bus = new MmioBus();
  bus.map(VIRT_TEST.base, VIRT_TEST.size, new SifiveTest((event) => end(exitForFinisher(event))), 'sifive_test');
  bus.map(VIRT_RTC.base, VIRT_RTC.size, new GoldfishRtc(), 'goldfish_rtc');
  const uartLine = new ShadowedLine(plic.irqLine(VIRT_IRQ.UART0));
  const uart = new Uart16550(uartLine, serial);
  const uartShadow = new ShadowWriter(memory, 0, VIRT_UART0.base, uart);
  uartLine.shadow = uartShadow;
  uart.onChange(() => uartShadow.update());
  bus.map(VIRT_UART0.base, VIRT_UART0.size, uart, 'uart0');
  const shadows = [uartShadow.window];
  const empty = new EmptyVirtioSlot();
  for (let slot = 0; slot < VIRT_VIRTIO_COUNT; slot++) {
    const region = virtioSlotRegion(slot);
    const device = virtio[VIRT_VIRTIO_COUNT - 1 - slot];
    if (!device) {
      bus.map(region.base, region.size, empty, `virtio-mmio.${slot}`);
      continue;
    }
    const line = VIRT_IRQ.VIRTIO_FIRST + slot;
    const status = new SharedStatus(memory, 1 + slot, VIRTIO_MMIO_INTERRUPT.status / 4);
    const core = new VirtioCore(device(), { ram, irq: plic.irqLine(line), location: `virtio-mmio@${region.base.toString(16)}`, interruptStatus: status });
    const mmio = new VirtioMmio(core);
    shadows.push(new ShadowWriter(memory, 1 + slot, region.base, mmio, { status, line }).window);
    bus.map(region.base, region.size, mmio, `virtio-mmio.${slot}`);
  }
  return { bus, shadows };
}

/** Serves the vCPU threads' mailbox requests: MMIO on the bus, the SBI console and system reset. */
function mainThreadRequests(
  bus: MmioBus,
  ram: GuestMemory,
  serial: CharBackend,
  end: (exit: MachineExit) => void,
): (request: MailboxRequest) => number {
  return (r) => {
    switch (r.op) {
      case MailboxOp.MMIO_LOAD:
        if (!bus.load(r.arg, r.size as BusAccessSize)) return STATUS_FAILED;
        r.resultLo = bus.lo;
        r.resultHi = bus.hi;
        return STATUS_OK;
      case MailboxOp.MMIO_STORE:
        return bus.store(r.arg, r.size as BusAccessSize, r.valueLo, r.valueHi) ? STATUS_OK : STATUS_FAILED;
      case MailboxOp.CONSOLE_WRITE: {
        const bytes = new Uint8Array(r.size);
        ram.read(r.arg, bytes);
        serial.write(bytes);
        r.resultLo = r.size;
        return STATUS_OK;
      }
      case MailboxOp.CONSOLE_PUTCHAR:
        serial.write(Uint8Array.of(r.valueLo & 0xff));
        return STATUS_OK;
      case MailboxOp.CONSOLE_READ:
        // Console input belongs to the UART; the SBI console reads nothing.
        r.resultLo = 0;
        return STATUS_OK;
      case MailboxOp.CONSOLE_GETCHAR:
        r.resultLo = -1;
        return STATUS_OK;
      case MailboxOp.SYSTEM_RESET:
        if (r.arg === SRST_TYPE.SHUTDOWN) end({ kind: 'poweroff', code: r.valueLo === SRST_REASON.SYSTEM_FAILURE ? 1 : 0 });
        else end({ kind: 'reboot' });
        return STATUS_OK;
      default:
        return STATUS_FAILED;
    }
  };
}

export function createVirtMachine(config: VirtMachineConfig): VirtMachine {
  const { harts, ramBytes } = config;
  if (!Number.isInteger(harts) || harts < 1 || harts > MAX_HARTS) throw new Error(`-smp: the virt machine takes 1 to ${MAX_HARTS} harts`);
  const virtio = config.virtio ?? [];
  if (virtio.length > VIRT_VIRTIO_COUNT) throw new Error(`the virt machine has ${VIRT_VIRTIO_COUNT} virtio-mmio slots, not ${virtio.length}`);
  const pages = memoryPagesFor(ramBytes);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const ram = flatGuestRam(new Uint8Array(memory.buffer), RAM_GPA_BASE, RAM_HOST_BASE, ramBytes);
  const layout = loadBootImages(
    ram,
    { base: RAM_GPA_BASE, size: ramBytes },
    { kernel: config.kernel, initrd: config.initrd, firmware: config.bios === 'none' ? undefined : config.bios },
    (initrd) => virtDeviceTree(config, initrd),
  );
  const firmware = config.bios === 'none' ? { entry: layout.kernel.entry, info: 0 } : layout.firmware;

  const { ending, end } = endOnce();

  const control = new HartControl(memory);
  const { bus, shadows } = virtDevices(memory, harts, config.serial, control, end, ram, virtio);
  const mailbox = new MailboxServer(memory, harts, mainThreadRequests(bus, ram, config.serial, end));

  new Clint({ memory, harts, sink: control }).reset();
  mailbox.reset();
  const entry = layout.kernel.entry;
  for (let hart = 0; hart < harts; hart++) {
    const boots = firmware !== undefined || hart === 0;
    control.setStart(hart, entry % 0x1_0000_0000, Math.floor(entry / 0x1_0000_0000), layout.fdt % 0x1_0000_0000, Math.floor(layout.fdt / 0x1_0000_0000));
    control.setState(hart, boots ? HSM.START_PENDING : HSM.STOPPED);
  }

  let threads: VcpuThread[] = [];
  const exit = ending.then(async (reason) => {
    control.setRunning(false);
    for (let hart = 0; hart < harts; hart++) control.kick(hart);
    mailbox.stop();
    const ends = await Promise.all(threads.map((t) => t.ended));
    const failed = ends.find((e): e is { error: string } => 'error' in e);
    return failed && reason.kind !== 'error' ? { kind: 'error' as const, message: failed.error } : reason;
  });

  return {
    layout,
    exit,
    deviceTree() {
      const header = new Uint8Array(8);
      ram.read(layout.fdt, header);
      const blob = new Uint8Array(new DataView(header.buffer).getUint32(4));
      ram.read(layout.fdt, blob);
      return blob;
    },
    start() {
      control.setRunning(true);
      mailbox.start();
      threads = Array.from({ length: harts }, (_, hart) =>
        startVcpuThread({
          memory,
          hart,
          harts,
          ramBytes,
          engine: config.engine,
          clint: VIRT_CLINT,
          plic: { window: virtPlicRegion(harts), ndev: VIRT_PLIC_NDEV, maxPriority: VIRT_PLIC_MAX_PRIORITY, state: VIRT_PLIC_STATE },
          shadows,
          firmware: firmware && { entry: firmware.entry, fdt: layout.fdt, info: firmware.info },
        }),
      );
      for (const thread of threads) {
        void thread.ended.then((e) => {
          if ('error' in e) end({ kind: 'error', message: e.error });
        });
      }
    },
    stop() {
      end({ kind: 'quit' });
    },
  };
}

/** Boots the machine, again after each guest reboot unless `noReboot`; resolves with how it finally ended. */
export function runVirtMachine(
  config: VirtMachineConfig,
  options: { noReboot: boolean; onMachine?: (machine: VirtMachine) => void },
): Promise<MachineExit> {
  return runMachine(() => createVirtMachine(config), options);
}
