/**
 * /dev/kvm as objects: the system (capability checks with clear errors), a
 * VM (guest RAM slots, the in-kernel irqchip and PIT, interrupt lines) and a
 * vCPU's setup (registers, special registers, CPUID, MSRs). Running a vCPU
 * happens on its worker thread (kvm-vcpu-worker.ts), which opens nothing itself:
 * the file descriptors are process-wide.
 *
 * openKvm() checks, in order, and names the first failure: /dev/kvm exists,
 * it can be opened (permission), the API version is 12, and the capabilities
 * the microvm machine relies on are present (user memory, irqchip, PIT2,
 * immediate_exit, extended CPUID, irqfd, ioeventfd). An irqfd lets a write to
 * an eventfd raise a GSI of the in-kernel irqchip; an ioeventfd turns a guest's
 * write to a port or MMIO address into a signal on an eventfd without leaving
 * the kernel (eventfd.ts holds the host side of both). Every file descriptor is closed by close().
 *
 * hostHasHardwareVirtualization() tells a KVM on VT-x/AMD-V from a software
 * one such as kvm-pvm (no vmx/svm CPU flag), where stock Linux guests do not
 * boot: tests and benchmarks that need a Linux guest ask it first.
 */
import { existsSync, readFileSync } from 'node:fs';
import {
  KVM, KVM_API_VERSION, KVM_CAP, cpuidBuffer, decodeCpuid, decodeRegs, decodeSregs, encodeCpuid, encodeMsrs,
  encodeRegs, encodeSregs, ioeventfd, irqfd, irqLevel, memoryRegion, pitConfig, type CpuidEntry, type IoEventFd,
  type Regs, type Sregs,
} from './abi.js';
import { KvmSysError, O_CLOEXEC, O_RDWR, ioctlBuffer, ioctlValue, sysClose, sysOpen } from './sys.js';

export class KvmUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KvmUnavailableError';
  }
}

/** The capabilities openKvm() requires, with what each is for. */
export const REQUIRED_CAPS: ReadonlyArray<readonly [keyof typeof KVM_CAP, string]> = [
  ['USER_MEMORY', 'guest RAM from host memory'],
  ['IRQCHIP', 'the in-kernel interrupt controllers'],
  ['PIT2', 'the in-kernel timer'],
  ['IMMEDIATE_EXIT', 'stopping a vCPU'],
  ['EXT_CPUID', 'CPUID setup'],
  ['IRQFD', 'interrupts from eventfds'],
  ['IOEVENTFD', 'guest writes signalled in the kernel'],
];

export interface KvmOpenOptions {
  /** The device node (tests point it elsewhere to see the errors). */
  path?: string;
}

/** Whether the host CPU shows VT-x or AMD-V (the "vmx" or "svm" flag in /proc/cpuinfo). */
export function hostHasHardwareVirtualization(cpuinfo = '/proc/cpuinfo'): boolean {
  try {
    return /^flags\s*:.*\b(vmx|svm)\b/m.test(readFileSync(cpuinfo, 'latin1'));
  } catch {
    return false;
  }
}

export class KvmSystem {
  private constructor(readonly fd: number, readonly vcpuMmapSize: number) {}

  static open(options: KvmOpenOptions = {}): KvmSystem {
    const path = options.path ?? '/dev/kvm';
    if (!existsSync(path)) {
      throw new KvmUnavailableError(`${path} does not exist: this host offers no KVM (load kvm_intel or kvm_amd, or enable nested virtualization)`);
    }
    let fd: number;
    try {
      fd = sysOpen(path, O_RDWR | O_CLOEXEC);
    } catch (err) {
      const code = err instanceof KvmSysError ? err.code : '';
      if (code === 'EACCES' || code === 'EPERM') {
        throw new KvmUnavailableError(`${path}: permission denied (add the user to the kvm group)`);
      }
      throw new KvmUnavailableError(`${path} cannot be opened: ${(err as Error).message}`);
    }
    try {
      let version: number;
      try {
        version = ioctlValue(fd, KVM.GET_API_VERSION, 'KVM_GET_API_VERSION');
      } catch (err) {
        throw new KvmUnavailableError(`${path} is not a KVM device: ${(err as Error).message}`);
      }
      if (version !== KVM_API_VERSION) throw new KvmUnavailableError(`${path}: KVM API version ${version}, tsemu needs ${KVM_API_VERSION}`);
      const system = new KvmSystem(fd, ioctlValue(fd, KVM.GET_VCPU_MMAP_SIZE, 'KVM_GET_VCPU_MMAP_SIZE'));
      const missing = REQUIRED_CAPS.filter(([cap]) => system.checkExtension(KVM_CAP[cap]) <= 0);
      if (missing.length > 0) {
        throw new KvmUnavailableError(`${path} lacks ${missing.map(([cap, why]) => `KVM_CAP_${cap} (${why})`).join(', ')}`);
      }
      return system;
    } catch (err) {
      sysClose(fd);
      throw err;
    }
  }

  checkExtension(cap: number): number {
    return ioctlValue(this.fd, KVM.CHECK_EXTENSION, 'KVM_CHECK_EXTENSION', cap);
  }

  /** The most vCPUs one VM may have. */
  maxVcpus(): number {
    return this.checkExtension(KVM_CAP.MAX_VCPUS) || this.checkExtension(KVM_CAP.NR_VCPUS) || 4;
  }

  supportedCpuid(): CpuidEntry[] {
    for (let count = 64; ; count *= 2) {
      const buffer = cpuidBuffer(count);
      try {
        ioctlBuffer(this.fd, KVM.GET_SUPPORTED_CPUID, 'KVM_GET_SUPPORTED_CPUID', buffer);
        return decodeCpuid(buffer);
      } catch (err) {
        if (!(err instanceof KvmSysError && err.code === 'E2BIG') || count >= 4096) throw err;
      }
    }
  }

  createVm(): KvmVm {
    return new KvmVm(ioctlValue(this.fd, KVM.CREATE_VM, 'KVM_CREATE_VM', 0));
  }

  close(): void {
    sysClose(this.fd);
  }
}

export class KvmVm {
  private nextSlot = 0;
  private readonly vcpus: KvmVcpu[] = [];

  constructor(readonly fd: number) {}

  /** Maps host memory at `hostAddress` as guest-physical [guestPhys, guestPhys + size). */
  addMemory(guestPhys: number, size: number, hostAddress: bigint): void {
    ioctlBuffer(this.fd, KVM.SET_USER_MEMORY_REGION, 'KVM_SET_USER_MEMORY_REGION', memoryRegion(this.nextSlot++, guestPhys, size, hostAddress));
  }

  /** Three pages of guest-physical space KVM may use on Intel hosts (below 4 GiB, outside RAM). */
  setTssAddress(gpa: number): void {
    ioctlValue(this.fd, KVM.SET_TSS_ADDR, 'KVM_SET_TSS_ADDR', gpa);
  }

  /** The in-kernel PIC pair, IOAPIC and local APICs. */
  createIrqchip(): void {
    ioctlValue(this.fd, KVM.CREATE_IRQCHIP, 'KVM_CREATE_IRQCHIP');
  }

  /** The in-kernel 8254 PIT on ports 0x40-0x43, wired to IRQ 0. */
  createPit(): void {
    ioctlBuffer(this.fd, KVM.CREATE_PIT2, 'KVM_CREATE_PIT2', pitConfig());
  }

  /** Drives GSI `gsi` of the in-kernel irqchip at `level` (held until changed: a level-triggered line). */
  setIrqLine(gsi: number, level: boolean): void {
    ioctlBuffer(this.fd, KVM.IRQ_LINE, 'KVM_IRQ_LINE', irqLevel(gsi, level));
  }

  /** Each signal of eventfd `fd` gives GSI `gsi` one edge, raised then lowered (ISA GSIs 0-15 reach both the PIC and the IOAPIC). */
  addIrqfd(fd: number, gsi: number): void {
    ioctlBuffer(this.fd, KVM.IRQFD, 'KVM_IRQFD', irqfd(fd, gsi));
  }

  /** Guest writes that `e` matches signal its eventfd in the kernel; the vCPU goes on without an exit. */
  addIoEventFd(e: IoEventFd): void {
    ioctlBuffer(this.fd, KVM.IOEVENTFD, 'KVM_IOEVENTFD', ioeventfd(e));
  }

  createVcpu(id: number): KvmVcpu {
    const vcpu = new KvmVcpu(ioctlValue(this.fd, KVM.CREATE_VCPU, 'KVM_CREATE_VCPU', id), id);
    this.vcpus.push(vcpu);
    return vcpu;
  }

  close(): void {
    for (const vcpu of this.vcpus) sysClose(vcpu.fd);
    sysClose(this.fd);
  }
}

export class KvmVcpu {
  constructor(readonly fd: number, readonly id: number) {}

  getRegs(): Regs {
    const b = new Uint8Array(144);
    ioctlBuffer(this.fd, KVM.GET_REGS, 'KVM_GET_REGS', b);
    return decodeRegs(b);
  }

  setRegs(regs: Partial<Regs>): void {
    ioctlBuffer(this.fd, KVM.SET_REGS, 'KVM_SET_REGS', encodeRegs(regs));
  }

  private rawSregs(): Uint8Array {
    const b = new Uint8Array(312);
    ioctlBuffer(this.fd, KVM.GET_SREGS, 'KVM_GET_SREGS', b);
    return b;
  }

  getSregs(): Sregs {
    return decodeSregs(this.rawSregs());
  }

  /** Changes the special registers `update` returns from the current ones. */
  updateSregs(update: (current: Sregs) => Sregs): void {
    const raw = this.rawSregs();
    ioctlBuffer(this.fd, KVM.SET_SREGS, 'KVM_SET_SREGS', encodeSregs(update(decodeSregs(raw)), raw));
  }

  setCpuid(entries: readonly CpuidEntry[]): void {
    ioctlBuffer(this.fd, KVM.SET_CPUID2, 'KVM_SET_CPUID2', encodeCpuid(entries));
  }

  setMsrs(msrs: ReadonlyArray<readonly [number, number]>): void {
    const set = ioctlBuffer(this.fd, KVM.SET_MSRS, 'KVM_SET_MSRS', encodeMsrs(msrs));
    if (set !== msrs.length) throw new Error(`KVM_SET_MSRS: KVM took ${set} of ${msrs.length} MSRs (0x${msrs[set][0].toString(16)} refused)`);
  }
}
