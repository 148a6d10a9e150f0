/**
 * The CPU state Linux's 64-bit boot protocol asks the loader for: long mode
 * with paging on, an identity map covering the kernel, boot_params and the
 * command line, a GDT whose selector 0x10 is a flat 64-bit code segment and
 * 0x18 a flat data segment (__BOOT_CS/__BOOT_DS), interrupts off.
 *
 * writeBootPageTables() writes one PML4, one PDPT and four page directories
 * of 2 MiB pages (the low 4 GiB, identity-mapped: RAM and the APIC/IOAPIC
 * windows alike) and the GDT at the addresses of BOOT_TABLES, in low memory
 * the e820 map reserves. bootSregs() turns the vCPU's special registers into
 * that state.
 */
import type { GuestMemory } from '../bus/interfaces.js';
import type { Segment, Sregs } from '../accel/kvm/abi.js';

export const BOOT_TABLES = {
  GDT: 0x500,
  PML4: 0x9000,
  PDPT: 0xa000,
  PD: 0xb000, // four pages: 0xb000-0xefff
  END: 0xf000,
} as const;

export const BOOT_CS = 0x10;
export const BOOT_DS = 0x18;

const PRESENT_WRITABLE = 0x3;
const LARGE_PAGE = 0x80;

const CR0_PE = 1 << 0;
const CR0_MP = 1 << 1;
const CR0_ET = 1 << 4;
const CR0_NE = 1 << 5;
const CR0_WP = 1 << 16;
const CR0_AM = 1 << 18;
const CR0_PG = 0x8000_0000;
const CR4_PAE = 1 << 5;
const EFER_LME = 1 << 8;
const EFER_LMA = 1 << 10;

function put64(bytes: Uint8Array, at: number, value: number): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view.setUint32(at, value % 0x1_0000_0000, true);
  view.setUint32(at + 4, Math.floor(value / 0x1_0000_0000), true);
}

/** The GDT: null, null, code64 (0x10), data (0x18). */
export function bootGdt(): Uint8Array {
  const gdt = new Uint8Array(32);
  const view = new DataView(gdt.buffer);
  view.setBigUint64(16, 0x00af9b000000ffffn, true);
  view.setBigUint64(24, 0x00cf93000000ffffn, true);
  return gdt;
}

export function writeBootPageTables(memory: GuestMemory): void {
  const pml4 = new Uint8Array(4096);
  put64(pml4, 0, BOOT_TABLES.PDPT | PRESENT_WRITABLE);
  const pdpt = new Uint8Array(4096);
  const pds = new Uint8Array(4 * 4096);
  for (let gib = 0; gib < 4; gib++) {
    put64(pdpt, gib * 8, BOOT_TABLES.PD + gib * 4096 + PRESENT_WRITABLE);
    for (let i = 0; i < 512; i++) put64(pds, (gib * 512 + i) * 8, (gib * 512 + i) * 0x20_0000 + (PRESENT_WRITABLE | LARGE_PAGE));
  }
  memory.write(BOOT_TABLES.PML4, pml4);
  memory.write(BOOT_TABLES.PDPT, pdpt);
  memory.write(BOOT_TABLES.PD, pds);
  memory.write(BOOT_TABLES.GDT, bootGdt());
}

function flat(selector: number, type: number, long: boolean): Segment {
  return { base: 0, limit: 0xffff_ffff, selector, type, present: 1, dpl: 0, db: long ? 0 : 1, s: 1, l: long ? 1 : 0, g: 1 };
}

/** The special registers of a vCPU entering the kernel's 64-bit entry point. */
export function bootSregs(current: Sregs): Sregs {
  const data = flat(BOOT_DS, 3, false);
  return {
    ...current,
    cs: flat(BOOT_CS, 11, true),
    ds: data,
    es: data,
    fs: data,
    gs: data,
    ss: data,
    gdt: { base: BOOT_TABLES.GDT, limit: 31 },
    idt: { base: 0, limit: 0 },
    cr0: (CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG) >>> 0,
    cr3: BOOT_TABLES.PML4,
    cr4: CR4_PAE,
    efer: EFER_LME | EFER_LMA,
  };
}
