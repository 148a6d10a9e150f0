import { Flags } from '@oclif/core';
import { readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TsemuCommand, UserError } from './base.js';
import { parseOptionString, parseSize } from '../block/options.js';
import { QueuedCharBackend } from '../emulator/devices/char-backend.js';
import { createSerialBackend, type SerialHooks } from '../emulator/chardev/create.js';
import type { EngineName } from '../emulator/riscv/engine.js';
import {
  createVirtMachine, runVirtMachine, type MachineExit, type VirtMachine, type VirtMachineConfig,
} from '../emulator/machines/riscv-virt.js';
import { runMicrovmMachine } from '../emulator/machines/microvm.js';
import { TRACE_EVENTS, enableTracePatterns } from '../emulator/accel/kvm/trace.js';
import { setUpVirtioDevices, type VirtioSetup } from '../emulator/config/virtio-devices.js';
import { isNetDevice, setUpNetDevices, type NetSetup } from '../emulator/config/netdev.js';

/**
 * `tsemu run`: boots a machine (the qemu-system analogue). Flags use QEMU's
 * names, with one or two dashes (-kernel and --kernel both work). Machines:
 * `virt` (RISC-V on tcg; without --kernel it boots the bundled guest from
 * fixtures/images/riscv64 — this module sits two folders below the package root
 * both as source and in the bundle) and `microvm` (x86-64 on kvm, --kernel bzImage).
 */

/** QEMU's single-dash long options, accepted as written and turned into oclif's double-dash form. */
const LONG_OPTIONS = new Set([
  'machine', 'smp', 'kernel', 'initrd', 'append', 'dtb', 'dump-dtb', 'bios', 'serial', 'nographic', 'no-reboot', 'accel', 'trace',
  'drive', 'device', 'chardev', 'snapshot',
  'netdev', 'net', 'nic',
]);

function qemuStyleArgv(argv: readonly string[]): string[] {
  return argv.map((arg) => (/^-[a-z]/.test(arg) && LONG_OPTIONS.has(arg.slice(1).split('=')[0]!) ? `-${arg}` : arg));
}

const BUNDLED = new URL('../../fixtures/images/riscv64/', import.meta.url);
const BUNDLED_APPEND = 'console=ttyS0 earlycon=sbi';
const DEBIAN_OPENSBI = '/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin';

type MachineType = 'virt' | 'microvm';

/** Checks -M (virt, with QEMU's dumpdtb=FILE option, or microvm): the type and the dumpdtb file if given. */
function parseMachine(text: string): { type: MachineType; dumpDtb?: string } {
  const options = parseOptionString(text);
  const [type] = [...options.keys()];
  if (type !== 'virt' && type !== 'microvm') {
    throw new UserError(`-M: unsupported machine type '${type ?? ''}' (tsemu has: virt, microvm)`);
  }
  for (const name of options.keys()) {
    if (name !== type && !(type === 'virt' && name === 'dumpdtb')) throw new UserError(`-M: the ${type} machine has no option '${name}'`);
  }
  return { type, dumpDtb: options.get('dumpdtb') };
}

/**
 * --device names for the machine's bus: microvm's devices are virtio-pci (virtio-blk-pci, virtio-rng-pci,
 * virtio-net-pci; the bare names mean them, as on QEMU's x86 machines), virt's are virtio-mmio (the bare or
 * -device names). Returns the arguments with the bus suffix dropped; the other bus's names are clear errors.
 */
function busDevices(machine: MachineType, devices: readonly string[]): string[] {
  const [own, other] = machine === 'microvm' ? ['-pci', '-device'] : ['-device', '-pci'];
  return devices.map((text) => {
    const name = text.split(',')[0]!;
    if (/^virtio-[\w-]+$/.test(name) && name.endsWith(other)) {
      const bus = machine === 'microvm' ? 'virtio-pci' : 'virtio-mmio';
      throw new UserError(`--device ${name}: the ${machine} machine takes ${bus} devices (${name.slice(0, -other.length)}${own})`);
    }
    return name.endsWith('-pci') ? text.replace(/^([\w-]+)-pci/, '$1') : text;
  });
}

function parseSmp(text: string): number {
  const options = parseOptionString(text);
  const first = [...options.keys()][0] ?? '';
  const count = /^\d+$/.test(first) ? Number(first) : Number(options.get('cpus'));
  if (!Number.isInteger(count) || count < 1) throw new UserError(`-smp: '${text}' does not name a number of CPUs`);
  return count;
}

/** Checks -accel for the machine: virt runs on tcg (with an engine), microvm on kvm. */
function parseAccel(text: string | undefined, machine: MachineType): EngineName {
  const accel = text ?? (machine === 'virt' ? 'tcg' : 'kvm');
  const options = parseOptionString(accel);
  if (machine === 'microvm') {
    if (!options.has('kvm') || options.size !== 1) throw new UserError(`-accel: '${accel}': the microvm machine runs on kvm only`);
    return 'jit';
  }
  if (!options.has('tcg')) throw new UserError(`-accel: '${accel}': the virt machine runs on tcg only`);
  const engine = options.get('engine') ?? 'jit';
  if (engine !== 'jit' && engine !== 'interp') throw new UserError(`-accel: engine must be jit or interp, not '${engine}'`);
  return engine;
}

async function readInput(path: string, what: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new UserError(`could not load ${what} '${path}': ${(err as Error).message}`);
  }
}

function exitCodeOf(exit: MachineExit): number {
  switch (exit.kind) {
    case 'poweroff':
      return exit.code;
    case 'quit':
      return 0;
    case 'error':
      process.stderr.write(`tsemu: the machine stopped on a host error: ${exit.message}\n`);
      return 1;
    default:
      return 0;
  }
}

export default class Run extends TsemuCommand {
  static override summary = 'Boot a machine (the qemu-system analogue): RISC-V virt on the JIT, x86-64 microvm on KVM';
  static override description =
    'Boot the RISC-V virt machine (QEMU 7.2 memory map, device tree generated by tsemu) with a kernel ' +
    '(flat Image, gzipped Image or ELF), an optional initrd and command line. The SBI is served by tsemu ' +
    'unless --bios names firmware (e.g. OpenSBI fw_dynamic.bin). The serial console is the terminal by ' +
    'default: Ctrl-A x quits, Ctrl-A h lists the escapes. Guest poweroff ends tsemu with exit 0; a guest ' +
    'reboot restarts the machine unless --no-reboot. Without --kernel the bundled guest boots to a shell. ' +
    '-M microvm boots an x86-64 bzImage on KVM (Linux\'s 64-bit boot protocol, ACPI poweroff, -smp N).';
  static override usage = 'run [-M virt|microvm] [-m SIZE] [--smp N] [--kernel FILE] [--initrd FILE] [--append CMDLINE] ' +
    '[--dtb FILE] [--dump-dtb FILE] [--bios FILE|opensbi|default|none] [--serial stdio|file:PATH|tcp:HOST:PORT,server] ' +
    '[--no-reboot] [--accel tcg[,engine=jit|interp]|kvm] [--trace [enable=]PATTERN|help] ' +
    '[--drive file=FILE[,format=F][,if=virtio|none][,id=ID][,readonly=on][,snapshot=on][,cache=MODE][,discard=ignore|unmap]] ' +
    '[--device virtio-blk[-pci],drive=ID|virtio-rng[-pci]|virtconsole,chardev=ID] [--chardev file|socket|stdio|null,id=ID,...] [--snapshot] ' +
    '[--netdev user|tap|socket|stream|dgram,id=ID,...] [--device virtio-net[-pci],netdev=ID[,mac=MAC]] [--net user|tap|...,...[,mac=MAC]]';
  static override flags = {
    machine: Flags.string({ char: 'M', description: 'machine type: virt[,dumpdtb=FILE] or microvm', default: 'virt' }),
    memory: Flags.string({ char: 'm', description: 'guest RAM size (a bare number is MiB)', default: '128M' }),
    smp: Flags.string({ description: 'number of harts (N or cpus=N)', default: '1' }),
    kernel: Flags.string({ description: 'kernel: flat RISC-V Image (optionally gzipped) or ELF' }),
    initrd: Flags.string({ description: 'initial ramdisk' }),
    append: Flags.string({ description: 'kernel command line' }),
    dtb: Flags.string({ description: 'device tree blob to use instead of the generated one' }),
    'dump-dtb': Flags.string({ description: 'write the device tree the machine would boot with to FILE and exit' }),
    bios: Flags.string({
      description: "firmware: FILE (OpenSBI fw_dynamic.bin), 'opensbi' (Debian's), 'default' (tsemu's SBI) or 'none' (kernel in M-mode)",
    }),
    serial: Flags.string({ description: 'serial console: stdio, file:PATH, tcp:HOST:PORT,server[,wait=off], null', default: 'stdio' }),
    nographic: Flags.boolean({ description: 'no display (always the case; accepted for QEMU command lines)' }),
    'no-reboot': Flags.boolean({ description: 'exit instead of restarting when the guest reboots' }),
    accel: Flags.string({ description: 'accelerator: tcg[,engine=jit|interp] (virt, the default) or kvm (microvm, the default)' }),
    trace: Flags.string({
      description: "microvm: print the start-up trace events [enable=]PATTERN matches ('*' wildcard) on stderr; 'help' lists them",
      multiple: true,
      multipleNonGreedy: true,
    }),
    drive: Flags.string({
      description: 'a disk, as QEMU spells -drive (file=, format=, if=virtio|none, id=, readonly=, snapshot=, cache=, discard=)',
      multiple: true,
      multipleNonGreedy: true,
    }),
    device: Flags.string({
      description: 'a virtio device: virtio-blk,drive=ID[,serial=S], virtio-rng, virtconsole,chardev=ID (virt: virtio-mmio, also *-device; microvm: virtio-pci, also *-pci)',
      multiple: true,
      multipleNonGreedy: true,
    }),
    chardev: Flags.string({
      description: 'a character backend for virtconsole: file,id=ID,path=P | socket,id=ID,host=H,port=P[,server=on,wait=off] | stdio,id=ID | null,id=ID',
      multiple: true,
      multipleNonGreedy: true,
    }),
    snapshot: Flags.boolean({ description: 'write to temporary overlays over every drive (discarded at exit)' }),
    netdev: Flags.string({
      description: 'a network backend for --device virtio-net,netdev=ID: TYPE,id=ID,... as `tsemu net connect` takes it',
      multiple: true,
      multipleNonGreedy: true,
    }),
    net: Flags.string({
      description: "a network backend and a virtio-net card on it (QEMU's -nic): user,...|tap,...[,mac=MAC][,model=virtio] or none",
      multiple: true,
      multipleNonGreedy: true,
      aliases: ['nic'],
    }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Run, qemuStyleArgv(this.argv));
    const machineType = parseMachine(flags.machine);
    const engine = parseAccel(flags.accel, machineType.type);
    const dumpDtb = machineType.dumpDtb ?? flags['dump-dtb'];
    if (machineType.type === 'microvm') {
      for (const flag of ['dtb', 'dump-dtb', 'bios'] as const) {
        if (flags[flag] !== undefined) throw new UserError(`--${flag} does not apply to the microvm machine`);
      }
      if (flags.trace?.includes('help')) {
        this.out(TRACE_EVENTS.map(([name, what]) => `${name}: ${what}`).join('\n'));
        return;
      }
      if (flags.kernel === undefined) throw new UserError('the microvm machine needs --kernel (an x86-64 bzImage)');
      try {
        enableTracePatterns((flags.trace ?? []).map((t) => t.replace(/^enable=/, '')));
      } catch (err) {
        throw new UserError((err as Error).message);
      }
    } else if (flags.trace !== undefined) {
      throw new UserError('--trace applies to the microvm machine only');
    }
    const bundled = flags.kernel === undefined;
    if (bundled && !existsSync(new URL('Image.gz', BUNDLED))) {
      throw new UserError('no --kernel given and the bundled guest is missing (scripts/guests/build-bundled-riscv64.sh makes it)');
    }
    let ramBytes: number;
    try {
      ramBytes = parseSize(flags.memory, 'memory size', 'm');
    } catch (err) {
      throw new UserError(`-m: ${(err as Error).message}`);
    }
    const bios = flags.bios === undefined || flags.bios === 'default' ? undefined
      : flags.bios === 'none' ? ('none' as const)
      : await readInput(flags.bios === 'opensbi' ? DEBIAN_OPENSBI : flags.bios, 'firmware');
    let machine: { stop(): void } | undefined;
    const hooks: SerialHooks = {
      onQuit: () => {
        process.stdout.write('\r\ntsemu: terminated\r\n');
        machine?.stop();
      },
      onListening: (a) => process.stderr.write(`tsemu: waiting for connection on: tcp:${a.address}:${a.port},server\n`),
    };
    const serial = createSerialBackend(flags.serial, hooks);
    const console = new QueuedCharBackend((bytes) => serial.write(bytes));
    serial.onInput((bytes) => console.push(bytes));
    const config: VirtMachineConfig = {
      ramBytes,
      harts: parseSmp(flags.smp),
      engine,
      kernel: await readInput(bundled ? fileURLToPath(new URL('Image.gz', BUNDLED)) : flags.kernel!, 'kernel'),
      initrd: bundled && flags.initrd === undefined
        ? await readInput(fileURLToPath(new URL('initramfs.cpio.gz', BUNDLED)), 'initrd')
        : flags.initrd === undefined ? undefined : await readInput(flags.initrd, 'initrd'),
      append: flags.append ?? (bundled ? BUNDLED_APPEND : undefined),
      dtb: flags.dtb === undefined ? undefined : await readInput(flags.dtb, 'device tree'),
      bios,
      serial: console,
    };
    if (dumpDtb !== undefined) {
      await writeFile(dumpDtb, this.build(config).deviceTree());
      return;
    }
    const devices = busDevices(machineType.type, flags.device ?? []);
    const virtio = await this.virtioDevices({ ...flags, device: devices }, hooks);
    const nics = await this.netDevices({ ...flags, device: devices }).catch(async (err: unknown) => {
      await virtio.close();
      throw err;
    });
    await serial.open();
    const terminate = (signal: string): void => {
      process.stderr.write(`tsemu: terminating on signal ${signal}\n`);
      machine?.stop();
    };
    process.once('SIGTERM', terminate).once('SIGHUP', terminate);
    let exit: MachineExit;
    const options = { noReboot: flags['no-reboot'], onMachine: (m: { stop(): void }) => (machine = m) };
    try {
      exit = machineType.type === 'microvm'
        ? await runMicrovmMachine({
          ramBytes, cpus: config.harts, kernel: config.kernel, initrd: config.initrd, append: config.append, serial: console,
          virtio: [...virtio.devices, ...nics.devices],
        }, options)
        : await runVirtMachine({ ...config, virtio: [...virtio.devices, ...nics.devices] }, options);
    } catch (err) {
      throw new UserError((err as Error).message);
    } finally {
      await virtio.close();
      await nics.close();
      await serial.close();
    }
    process.exit(exitCodeOf(exit));
  }

  /** The virtio devices of --drive, --device, --chardev and -snapshot, opened and ready. */
  private async virtioDevices(
    flags: { drive?: string[]; device?: string[]; chardev?: string[]; snapshot: boolean; serial: string },
    hooks: SerialHooks,
  ): Promise<VirtioSetup> {
    let setup: VirtioSetup;
    try {
      setup = await setUpVirtioDevices({
        drives: flags.drive ?? [], devices: (flags.device ?? []).filter((d) => !isNetDevice(d)), chardevs: flags.chardev ?? [], snapshot: flags.snapshot, serial: flags.serial,
        hooks,
      });
      await setup.open().catch(async (err: Error) => {
        await setup.close();
        throw err;
      });
    } catch (err) {
      throw new UserError((err as Error).message);
    }
    return setup;
  }

  /** The network cards of --netdev, --device virtio-net and --net, their backends open. */
  private async netDevices(flags: { netdev?: string[]; device?: string[]; net?: string[] }): Promise<NetSetup> {
    try {
      return await setUpNetDevices({ netdevs: flags.netdev ?? [], devices: (flags.device ?? []).filter(isNetDevice), nets: flags.net ?? [] });
    } catch (err) {
      throw new UserError((err as Error).message);
    }
  }

  /** Builds the machine, turning boot-image errors into user errors. */
  private build(config: VirtMachineConfig): VirtMachine {
    try {
      return createVirtMachine(config);
    } catch (err) {
      throw new UserError((err as Error).message);
    }
  }
}
