/**
 * The KVM API for x86-64 as numbers and byte layouts (linux/kvm.h, the
 * kernel's Documentation/virt/kvm/api.rst): ioctl request codes,
 * capabilities, exit reasons, and encoders/decoders for the structs tsemu
 * passes (kvm_regs, kvm_sregs, kvm_cpuid2, kvm_msrs, the memory region, the
 * irqfd and ioeventfd registrations, the kvm_run header and its io/mmio/system_event/internal unions).
 *
 * Setup-time code only: values are plain numbers (guest addresses and
 * register values tsemu sets stay below 2^53); 64-bit fields go through
 * DataView's BigInt accessors, never on a per-exit path.
 */

const KVMIO = 0xae;
const io = (nr: number): number => (KVMIO << 8) | nr;
const iow = (nr: number, size: number): number => ((1 << 30) | (size << 16) | (KVMIO << 8) | nr) >>> 0;
const ior = (nr: number, size: number): number => ((2 << 30) | (size << 16) | (KVMIO << 8) | nr) >>> 0;
const iowr = (nr: number, size: number): number => ((3 << 30) | (size << 16) | (KVMIO << 8) | nr) >>> 0;

export const KVM_API_VERSION = 12;

export const KVM = {
  GET_API_VERSION: io(0x00),
  CREATE_VM: io(0x01),
  CHECK_EXTENSION: io(0x03),
  GET_VCPU_MMAP_SIZE: io(0x04),
  GET_SUPPORTED_CPUID: iowr(0x05, 8),
  CREATE_VCPU: io(0x41),
  SET_USER_MEMORY_REGION: iow(0x46, 32),
  SET_TSS_ADDR: io(0x47),
  SET_IDENTITY_MAP_ADDR: iow(0x48, 8),
  CREATE_IRQCHIP: io(0x60),
  IRQ_LINE: iow(0x61, 8),
  IRQFD: iow(0x76, 32),
  IOEVENTFD: iow(0x79, 64),
  CREATE_PIT2: iow(0x77, 64),
  RUN: io(0x80),
  GET_REGS: ior(0x81, 144),
  SET_REGS: iow(0x82, 144),
  GET_SREGS: ior(0x83, 312),
  SET_SREGS: iow(0x84, 312),
  SET_MSRS: iow(0x89, 8),
  SET_CPUID2: iow(0x90, 8),
} as const;

export const KVM_CAP = {
  IRQCHIP: 0,
  HLT: 1,
  USER_MEMORY: 3,
  SET_TSS_ADDR: 4,
  EXT_CPUID: 7,
  NR_VCPUS: 9,
  IRQFD: 32,
  PIT2: 33,
  IOEVENTFD: 36,
  MAX_VCPUS: 66,
  IMMEDIATE_EXIT: 136,
} as const;

export const KVM_EXIT = {
  UNKNOWN: 0,
  EXCEPTION: 1,
  IO: 2,
  HYPERCALL: 3,
  DEBUG: 4,
  HLT: 5,
  MMIO: 6,
  IRQ_WINDOW_OPEN: 7,
  SHUTDOWN: 8,
  FAIL_ENTRY: 9,
  INTR: 10,
  INTERNAL_ERROR: 17,
  SYSTEM_EVENT: 24,
} as const;

export function exitReasonName(reason: number): string {
  const entry = Object.entries(KVM_EXIT).find(([, value]) => value === reason);
  return entry ? entry[0] : `exit reason ${reason}`;
}

export const KVM_SYSTEM_EVENT = { SHUTDOWN: 1, RESET: 2, CRASH: 3 } as const;

/** Offsets in struct kvm_run (the header and the unions tsemu reads). */
export const RUN = {
  IMMEDIATE_EXIT: 1,
  EXIT_REASON: 8,
  // The exit union starts at 32.
  IO_DIRECTION: 32, // u8: 0 in, 1 out
  IO_SIZE: 33,
  IO_PORT: 34, // u16
  IO_COUNT: 36, // u32
  IO_DATA_OFFSET: 40, // u64, from the start of kvm_run
  MMIO_PHYS_ADDR: 32, // u64
  MMIO_DATA: 40, // u8[8]
  MMIO_LEN: 48, // u32
  MMIO_IS_WRITE: 52, // u8
  EVENT_TYPE: 32, // u32 (system_event and internal.suberror, fail_entry reason low word)
  INTERNAL_NDATA: 36,
  INTERNAL_DATA: 40,
} as const;

export const KVM_EXIT_IO_OUT = 1;

/** struct kvm_userspace_memory_region. */
export function memoryRegion(slot: number, guestPhys: number, size: number, hostAddress: bigint): Uint8Array {
  const b = new Uint8Array(32);
  const v = new DataView(b.buffer);
  v.setUint32(0, slot, true);
  v.setUint32(4, 0, true);
  v.setBigUint64(8, BigInt(guestPhys), true);
  v.setBigUint64(16, BigInt(size), true);
  v.setBigUint64(24, hostAddress, true);
  return b;
}

/** struct kvm_irqfd: the eventfd `fd` raises and lowers (one edge per signal) GSI `gsi`. */
/** struct kvm_irq_level: the GSI and the level to drive it at. */
export function irqLevel(gsi: number, level: boolean): Uint8Array {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setUint32(0, gsi, true);
  v.setUint32(4, level ? 1 : 0, true);
  return b;
}

export function irqfd(fd: number, gsi: number): Uint8Array {
  const b = new Uint8Array(32);
  const v = new DataView(b.buffer);
  v.setUint32(0, fd, true);
  v.setUint32(4, gsi, true);
  return b;
}

export interface IoEventFd {
  /** Port I/O or MMIO. */
  space: 'pio' | 'mmio';
  address: number;
  /** The access width it answers: 1, 2, 4 or 8 bytes. */
  length: 1 | 2 | 4 | 8;
  /** Only writes of this value (below 2^53) signal; others exit to the VMM as before. Any value when absent. */
  datamatch?: number;
  fd: number;
}

const IOEVENTFD_DATAMATCH = 1 << 0;
const IOEVENTFD_PIO = 1 << 1;

/** struct kvm_ioeventfd: guest writes to `address` signal `fd` in the kernel instead of exiting. */
export function ioeventfd(e: IoEventFd): Uint8Array {
  const b = new Uint8Array(64);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(e.datamatch ?? 0), true);
  v.setBigUint64(8, BigInt(e.address), true);
  v.setUint32(16, e.length, true);
  v.setInt32(20, e.fd, true);
  v.setUint32(24, (e.datamatch === undefined ? 0 : IOEVENTFD_DATAMATCH) | (e.space === 'pio' ? IOEVENTFD_PIO : 0), true);
  return b;
}

/** struct kvm_pit_config with KVM_PIT_SPEAKER_DUMMY: the kernel also answers port 0x61. */
export function pitConfig(): Uint8Array {
  const b = new Uint8Array(64);
  b[0] = 1;
  return b;
}

export const REG_NAMES = [
  'rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'rip', 'rflags',
] as const;
export type Regs = Record<(typeof REG_NAMES)[number], number>;

export function encodeRegs(regs: Partial<Regs>): Uint8Array {
  const b = new Uint8Array(144);
  const v = new DataView(b.buffer);
  REG_NAMES.forEach((name, i) => v.setBigUint64(i * 8, BigInt(regs[name] ?? 0), true));
  return b;
}

export function decodeRegs(b: Uint8Array): Regs {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return Object.fromEntries(REG_NAMES.map((name, i) => [name, Number(v.getBigUint64(i * 8, true))])) as Regs;
}

/** struct kvm_segment. */
export interface Segment {
  base: number;
  limit: number;
  selector: number;
  type: number;
  present: number;
  dpl: number;
  db: number;
  s: number;
  l: number;
  g: number;
}

export interface Sregs {
  cs: Segment;
  ds: Segment;
  es: Segment;
  fs: Segment;
  gs: Segment;
  ss: Segment;
  tr: Segment;
  ldt: Segment;
  gdt: { base: number; limit: number };
  idt: { base: number; limit: number };
  cr0: number;
  cr2: number;
  cr3: number;
  cr4: number;
  cr8: number;
  efer: number;
  apicBase: number;
}

const SEGMENTS = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'] as const;
const CONTROL = ['cr0', 'cr2', 'cr3', 'cr4', 'cr8', 'efer', 'apicBase'] as const;

function putSegment(v: DataView, at: number, s: Segment): void {
  v.setBigUint64(at, BigInt(s.base), true);
  v.setUint32(at + 8, s.limit >>> 0, true);
  v.setUint16(at + 12, s.selector, true);
  [s.type, s.present, s.dpl, s.db, s.s, s.l, s.g, 0, s.present ? 0 : 1].forEach((x, i) => v.setUint8(at + 14 + i, x));
}

function getSegment(v: DataView, at: number): Segment {
  const u8 = (i: number): number => v.getUint8(at + 14 + i);
  return {
    base: Number(v.getBigUint64(at, true)),
    limit: v.getUint32(at + 8, true),
    selector: v.getUint16(at + 12, true),
    type: u8(0), present: u8(1), dpl: u8(2), db: u8(3), s: u8(4), l: u8(5), g: u8(6),
  };
}

/** Encodes sregs over `base` (the kernel's current struct, which keeps the interrupt bitmap). */
export function encodeSregs(s: Sregs, base: Uint8Array): Uint8Array {
  const b = Uint8Array.from(base);
  const v = new DataView(b.buffer);
  SEGMENTS.forEach((name, i) => putSegment(v, i * 24, s[name]));
  v.setBigUint64(192, BigInt(s.gdt.base), true);
  v.setUint16(200, s.gdt.limit, true);
  v.setBigUint64(208, BigInt(s.idt.base), true);
  v.setUint16(216, s.idt.limit, true);
  CONTROL.forEach((name, i) => v.setBigUint64(224 + i * 8, BigInt(s[name]), true));
  return b;
}

export function decodeSregs(b: Uint8Array): Sregs {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const segs = Object.fromEntries(SEGMENTS.map((name, i) => [name, getSegment(v, i * 24)]));
  const ctrl = Object.fromEntries(CONTROL.map((name, i) => [name, Number(v.getBigUint64(224 + i * 8, true))]));
  return {
    ...segs,
    ...ctrl,
    gdt: { base: Number(v.getBigUint64(192, true)), limit: v.getUint16(200, true) },
    idt: { base: Number(v.getBigUint64(208, true)), limit: v.getUint16(216, true) },
  } as Sregs;
}

/** One struct kvm_cpuid_entry2. */
export interface CpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

const CPUID_ENTRY_SIZE = 40;

/** An empty struct kvm_cpuid2 with room for `count` entries (for KVM_GET_SUPPORTED_CPUID). */
export function cpuidBuffer(count: number): Uint8Array {
  const b = new Uint8Array(8 + count * CPUID_ENTRY_SIZE);
  new DataView(b.buffer).setUint32(0, count, true);
  return b;
}

export function decodeCpuid(b: Uint8Array): CpuidEntry[] {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = v.getUint32(0, true);
  return Array.from({ length: n }, (_, i) => {
    const at = 8 + i * CPUID_ENTRY_SIZE;
    const u32 = (k: number): number => v.getUint32(at + k * 4, true);
    return { function: u32(0), index: u32(1), flags: u32(2), eax: u32(3), ebx: u32(4), ecx: u32(5), edx: u32(6) };
  });
}

export function encodeCpuid(entries: readonly CpuidEntry[]): Uint8Array {
  const b = cpuidBuffer(entries.length);
  const v = new DataView(b.buffer);
  entries.forEach((e, i) => {
    const at = 8 + i * CPUID_ENTRY_SIZE;
    [e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx].forEach((x, k) => v.setUint32(at + k * 4, x >>> 0, true));
  });
  return b;
}

/** struct kvm_msrs with its entries (index, value). */
export function encodeMsrs(msrs: ReadonlyArray<readonly [number, number]>): Uint8Array {
  const b = new Uint8Array(8 + msrs.length * 16);
  const v = new DataView(b.buffer);
  v.setUint32(0, msrs.length, true);
  msrs.forEach(([index, value], i) => {
    v.setUint32(8 + i * 16, index, true);
    v.setBigUint64(16 + i * 16, BigInt(value), true);
  });
  return b;
}
