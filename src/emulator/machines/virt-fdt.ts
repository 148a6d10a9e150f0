/**
 * The device tree tsemu hands a kernel (or OpenSBI) on the `virt` machine.
 *
 * It describes what virt-map.ts places: RAM, the harts with their local
 * interrupt controllers and a cpu-map, and under /soc the CLINT, the PLIC
 * (contexts M then S per hart), the 16550 UART, the goldfish RTC, the
 * sifive_test syscon with poweroff (0x5555) and reboot (0x7777) nodes, and the
 * virtio-mmio slots; /chosen carries the command line, stdout-path, the initrd
 * range and an optional rng-seed. Phandles are allocated in build order. The
 * result is an FdtTree, so a caller can still edit it before serializeFdt.
 *
 * The ISA string is validated and also split into riscv,isa-base and
 * riscv,isa-extensions, which newer kernels prefer to parsing riscv,isa.
 */
import { FdtTree } from '../fdt/fdt-node.js';
import { writeChosen } from '../fdt/fdt-query.js';
import { MAX_HARTS, TIMEBASE_HZ } from '../riscv/layout.js';
import {
  VIRT_CLINT,
  VIRT_DRAM_BASE,
  VIRT_IRQ,
  VIRT_PLIC_NDEV,
  VIRT_RTC,
  VIRT_TEST,
  VIRT_UART0,
  VIRT_UART_CLOCK_HZ,
  VIRT_VIRTIO_COUNT,
  type MmioRegion,
  virtPlicRegion,
  virtioSlotRegion,
} from './virt-map.js';

export interface VirtFdtOptions {
  ramSize: number;
  harts: number;
  /** The riscv,isa string, e.g. "rv64imafdc_zicsr_zifencei_zicntr". */
  isa: string;
  ramBase?: number;
  mmuType?: 'riscv,sv39' | 'riscv,sv48';
  bootargs?: string;
  initrd?: { start: number; end: number };
  stdoutPath?: string;
  timebaseHz?: number;
  /** How many virtio-mmio slots to describe (QEMU always describes all 8). */
  virtioSlots?: number;
  rngSeed?: Uint8Array;
}

/** Interrupt causes of the hart-local controller (privileged spec mip bits). */
const CAUSE = { S_EXT: 9, M_EXT: 11, M_SOFT: 3, M_TIMER: 7 } as const;

const SYSCON_POWEROFF = 0x5555;
const SYSCON_REBOOT = 0x7777;

export const VIRT_STDOUT_PATH = `/soc/${nodeName('serial', VIRT_UART0)}`;

function nodeName(kind: string, region: MmioRegion): string {
  return `${kind}@${region.base.toString(16)}`;
}

/** Splits "rv64imafdc_zicsr_zifencei" into its base ("rv64i") and extension names. */
export function splitIsa(isa: string): { base: string; extensions: string[] } {
  const m = /^rv(32|64)([a-z]+)((?:_[a-z][a-z0-9]*)*)$/.exec(isa);
  if (!m || !m[2].startsWith('i')) throw new RangeError(`riscv,isa '${isa}' is not rv32/rv64 followed by i and extensions`);
  const letters = [...m[2]];
  const multi = m[3].split('_').filter((e) => e !== '');
  return { base: `rv${m[1]}i`, extensions: [...letters, ...multi] };
}

export function buildVirtFdt(opts: VirtFdtOptions): FdtTree {
  const { harts } = opts;
  if (!Number.isInteger(harts) || harts < 1 || harts > MAX_HARTS) throw new RangeError(`harts must be 1..${MAX_HARTS}, not ${harts}`);
  const slots = opts.virtioSlots ?? VIRT_VIRTIO_COUNT;
  if (!Number.isInteger(slots) || slots < 0 || slots > VIRT_VIRTIO_COUNT) throw new RangeError(`virtio slots must be 0..${VIRT_VIRTIO_COUNT}`);
  const isa = splitIsa(opts.isa);
  const ramBase = opts.ramBase ?? VIRT_DRAM_BASE;

  const tree = new FdtTree();
  const root = tree.root
    .setU32('#address-cells', 2)
    .setU32('#size-cells', 2)
    .setString('compatible', 'riscv-virtio')
    .setString('model', 'riscv-virtio,tsemu');

  writeChosen(tree, {
    stdoutPath: opts.stdoutPath ?? VIRT_STDOUT_PATH,
    bootargs: opts.bootargs,
    initrdStart: opts.initrd?.start,
    initrdEnd: opts.initrd?.end,
    rngSeed: opts.rngSeed,
  });

  root
    .addNode(`memory@${ramBase.toString(16)}`)
    .setString('device_type', 'memory')
    .setU64s('reg', [ramBase, opts.ramSize]);

  const cpus = root
    .addNode('cpus')
    .setU32('#address-cells', 1)
    .setU32('#size-cells', 0)
    .setU32('timebase-frequency', opts.timebaseHz ?? TIMEBASE_HZ);
  const intcs: number[] = [];
  const cpuHandles: number[] = [];
  for (let hart = 0; hart < harts; hart++) {
    const cpu = cpus
      .addNode(`cpu@${hart}`)
      .setString('device_type', 'cpu')
      .setU32('reg', hart)
      .setString('status', 'okay')
      .setString('compatible', 'riscv')
      .setString('riscv,isa', opts.isa)
      .setString('riscv,isa-base', isa.base)
      .setStrings('riscv,isa-extensions', isa.extensions)
      .setString('mmu-type', opts.mmuType ?? 'riscv,sv48');
    cpuHandles.push(tree.phandle(cpu));
    const intc = cpu
      .addNode('interrupt-controller')
      .setU32('#interrupt-cells', 1)
      .setU32('#address-cells', 0)
      .setEmpty('interrupt-controller')
      .setString('compatible', 'riscv,cpu-intc');
    intcs.push(tree.phandle(intc));
  }
  const cluster = cpus.addNode('cpu-map').addNode('cluster0');
  cpuHandles.forEach((handle, hart) => cluster.addNode(`core${hart}`).setU32('cpu', handle));

  const soc = root
    .addNode('soc')
    .setU32('#address-cells', 2)
    .setU32('#size-cells', 2)
    .setString('compatible', 'simple-bus')
    .setEmpty('ranges');
  const reg = (region: MmioRegion) => [region.base, region.size];

  soc
    .addNode(nodeName('clint', VIRT_CLINT))
    .setStrings('compatible', ['sifive,clint0', 'riscv,clint0'])
    .setU64s('reg', reg(VIRT_CLINT))
    .setCells('interrupts-extended', intcs.flatMap((h) => [h, CAUSE.M_SOFT, h, CAUSE.M_TIMER]));

  const plicRegion = virtPlicRegion(harts);
  const plic = soc
    .addNode(nodeName('plic', plicRegion))
    .setU32('#interrupt-cells', 1)
    .setU32('#address-cells', 0)
    .setStrings('compatible', ['sifive,plic-1.0.0', 'riscv,plic0'])
    .setEmpty('interrupt-controller')
    .setU64s('reg', reg(plicRegion))
    .setCells('interrupts-extended', intcs.flatMap((h) => [h, CAUSE.M_EXT, h, CAUSE.S_EXT]))
    .setU32('riscv,ndev', VIRT_PLIC_NDEV);
  const plicHandle = tree.phandle(plic);

  soc
    .addNode(nodeName('serial', VIRT_UART0))
    .setString('compatible', 'ns16550a')
    .setU64s('reg', reg(VIRT_UART0))
    .setU32('clock-frequency', VIRT_UART_CLOCK_HZ)
    .setU32('interrupt-parent', plicHandle)
    .setU32('interrupts', VIRT_IRQ.UART0);

  soc
    .addNode(nodeName('rtc', VIRT_RTC))
    .setString('compatible', 'google,goldfish-rtc')
    .setU64s('reg', reg(VIRT_RTC))
    .setU32('interrupt-parent', plicHandle)
    .setU32('interrupts', VIRT_IRQ.RTC);

  const test = soc
    .addNode(nodeName('test', VIRT_TEST))
    .setStrings('compatible', ['sifive,test1', 'sifive,test0', 'syscon'])
    .setU64s('reg', reg(VIRT_TEST));
  const testHandle = tree.phandle(test);

  // Highest address first, as QEMU lists them: its first virtio device sits in the highest slot.
  for (let slot = slots - 1; slot >= 0; slot--) {
    const region = virtioSlotRegion(slot);
    soc
      .addNode(nodeName('virtio_mmio', region))
      .setString('compatible', 'virtio,mmio')
      .setU64s('reg', reg(region))
      .setU32('interrupt-parent', plicHandle)
      .setU32('interrupts', VIRT_IRQ.VIRTIO_FIRST + slot);
  }

  for (const [name, compatible, value] of [
    ['poweroff', 'syscon-poweroff', SYSCON_POWEROFF],
    ['reboot', 'syscon-reboot', SYSCON_REBOOT],
  ] as const) {
    root
      .addNode(name)
      .setString('compatible', compatible)
      .setU32('regmap', testHandle)
      .setU32('offset', 0)
      .setU32('value', value);
  }
  return tree;
}
