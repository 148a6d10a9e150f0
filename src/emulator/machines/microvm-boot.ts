/**
 * Loads a bzImage for the microvm machine the way Linux's 64-bit boot
 * protocol asks (x86/bzimage.ts): the protected-mode part at 1 MiB, the
 * command line, the initrd at the top of RAM below the 32-bit hole and the
 * kernel's initrd_addr_max (or at the top of all RAM for a kernel that takes
 * it above 4 GiB), the e820 map (RAM split around the hole, microvm-ram.ts), the ACPI tables, boot_params, and the
 * identity-mapped page tables and GDT the vCPU enters long mode with. Every
 * size is checked against RAM first: a kernel, initrd or command line that
 * does not fit is a clear error.
 */
import type { GuestMemory } from '../bus/interfaces.js';
import { S5_SLP_TYP, buildAcpiTables } from '../x86/acpi.js';
import { E820_RAM, E820_RESERVED, buildBootParams, type E820Entry } from '../x86/boot-params.js';
import { ENTRY_64_OFFSET, parseBzImage } from '../x86/bzimage.js';
import { writeBootPageTables } from '../x86/long-mode.js';
import { MICROVM_IRQ, MICROVM_MEMORY, MICROVM_PORTS } from './microvm-map.js';
import { microvmRamLayout } from './microvm-ram.js';

export interface MicrovmBootInput {
  ramBytes: number;
  cpus: number;
  kernel: Uint8Array;
  initrd?: Uint8Array;
  append?: string;
}

export interface MicrovmBootLayout {
  entry: number;
  bootParams: number;
  kernel: { start: number; end: number };
  initrd?: { start: number; end: number };
  e820: E820Entry[];
  /** The SLP_TYP the DSDT gives S5 (the PM1a control register powers off on it). */
  s5SleepType: number;
}

const PAGE = 4096;

export function microvmE820(ramBytes: number): E820Entry[] {
  const { LOW_RAM_END, BIOS_END } = MICROVM_MEMORY;
  const [low, ...high] = microvmRamLayout(ramBytes);
  return [
    { addr: 0, size: LOW_RAM_END, type: E820_RAM },
    { addr: LOW_RAM_END, size: BIOS_END - LOW_RAM_END, type: E820_RESERVED },
    { addr: BIOS_END, size: low.size - BIOS_END, type: E820_RAM },
    ...high.map((r) => ({ addr: r.gpa, size: r.size, type: E820_RAM })),
  ];
}

/** Where the initrd may go: [floor, ceiling) at the top of RAM the kernel can reach. */
function initrdWindow(ramBytes: number, kernelEnd: number, addrMax: number, above4G: boolean): { floor: number; ceiling: number } {
  const ranges = microvmRamLayout(ramBytes);
  const high = ranges[1];
  if (above4G && high) return { floor: high.gpa, ceiling: high.gpa + high.size };
  return { floor: kernelEnd, ceiling: Math.min(ranges[0].size, addrMax + 1) };
}

export function loadMicrovmBoot(ram: GuestMemory, input: MicrovmBootInput): MicrovmBootLayout {
  const image = parseBzImage(input.kernel);
  const { header } = image;
  const kernelStart = MICROVM_MEMORY.KERNEL;
  const kernelEnd = kernelStart + Math.max(header.initSize, image.kernel.length);
  if (kernelEnd > microvmRamLayout(input.ramBytes)[0].size) {
    throw new Error(`kernel: needs ${Math.ceil((kernelEnd - kernelStart) / 2 ** 20)} MiB at 1 MiB, more than the guest RAM (-m) has`);
  }
  ram.write(kernelStart, image.kernel);

  const cmdline = new TextEncoder().encode(input.append ?? '');
  const cmdlineMax = header.version >= 0x0206 ? header.cmdlineSize : 255;
  if (cmdline.length > cmdlineMax) throw new Error(`--append: ${cmdline.length} bytes, the kernel takes at most ${cmdlineMax}`);
  ram.write(MICROVM_MEMORY.CMDLINE, Uint8Array.from([...cmdline, 0]));

  let initrd: MicrovmBootLayout['initrd'];
  if (input.initrd) {
    const { floor, ceiling } = initrdWindow(input.ramBytes, kernelEnd, header.initrdAddrMax, image.initrdAbove4G);
    const start = Math.floor((ceiling - input.initrd.length) / PAGE) * PAGE;
    if (start < floor) throw new Error(`initrd: ${input.initrd.length} bytes do not fit in the guest RAM the kernel can reach (-m too small)`);
    ram.write(start, input.initrd);
    initrd = { start, end: start + input.initrd.length };
  }

  const acpi = buildAcpiTables(MICROVM_MEMORY.ACPI, {
    cpus: input.cpus,
    pm1aEventPort: MICROVM_PORTS.PM1A_EVENT,
    pm1aControlPort: MICROVM_PORTS.PM1A_CONTROL,
    sciIrq: MICROVM_IRQ.SCI,
  });
  ram.write(MICROVM_MEMORY.ACPI, acpi.bytes);

  const e820 = microvmE820(input.ramBytes);
  ram.write(MICROVM_MEMORY.BOOT_PARAMS, buildBootParams({
    header: header.bytes,
    cmdlineAddr: MICROVM_MEMORY.CMDLINE,
    initrd: initrd && { addr: initrd.start, size: initrd.end - initrd.start },
    e820,
    rsdpAddr: acpi.rsdpAddr,
  }));
  writeBootPageTables(ram);
  return {
    entry: kernelStart + ENTRY_64_OFFSET,
    bootParams: MICROVM_MEMORY.BOOT_PARAMS,
    kernel: { start: kernelStart, end: kernelEnd },
    initrd,
    e820,
    s5SleepType: S5_SLP_TYP,
  };
}
