/**
 * The C library calls the KVM accelerator needs, through koffi (an FFI: no
 * compiler at install): open/close of /dev/kvm, ioctl with a pointer or an
 * integer argument, mmap/munmap (guest RAM, each vCPU's kvm_run page), and
 * gettid/tgkill to kick one vCPU thread out of KVM_RUN with a signal.
 *
 * koffi and libc load on first use, separately in each thread that calls
 * them (koffi works in worker threads). Every call is synchronous; KVM_RUN
 * blocks its calling thread, which is why vCPUs run on worker threads. A
 * failed call throws a KvmSysError carrying the errno name (`code`).
 */
import type * as Koffi from 'koffi';
import { libc as sharedLibc } from '../../../util/libc.js';

export class KvmSysError extends Error {
  constructor(readonly call: string, readonly errno: number, readonly code: string, description: string) {
    super(`${call}: ${description} (${code})`);
    this.name = 'KvmSysError';
  }
}

export const O_RDWR = 0o2;
export const O_CLOEXEC = 0o2000000;
const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 0x01;
const MAP_PRIVATE = 0x02;
const MAP_ANONYMOUS = 0x20;
const MAP_NORESERVE = 0x4000;
export const EINTR = 4;
export const EAGAIN = 11;

interface Libc {
  koffi: typeof Koffi;
  open: (path: string, flags: number) => number;
  close: (fd: number) => number;
  ioctlPtr: (fd: number, request: number, arg: Uint8Array | null) => number;
  ioctlInt: (fd: number, request: number, arg: number) => number;
  mmap: (addr: null, len: number, prot: number, flags: number, fd: number, off: number) => unknown;
  munmap: (addr: unknown, len: number) => number;
  gettid: () => number;
  getpid: () => number;
  tgkill: (tgid: number, tid: number, sig: number) => number;
  strerror: (errnum: number) => string;
}

let libc: Libc | null = null;

function load(): Libc {
  if (libc) return libc;
  const { koffi, lib, describe } = sharedLibc();
  libc = {
    koffi,
    open: lib.func('int open(const char *path, int flags)') as Libc['open'],
    close: lib.func('int close(int fd)') as Libc['close'],
    // ioctl is variadic in C; every KVM request takes one pointer or one integer.
    ioctlPtr: lib.func('ioctl', 'int', ['int', 'unsigned long', 'void *']) as Libc['ioctlPtr'],
    ioctlInt: lib.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']) as Libc['ioctlInt'],
    mmap: lib.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)') as Libc['mmap'],
    munmap: lib.func('int munmap(void *addr, size_t len)') as Libc['munmap'],
    gettid: lib.func('int gettid(void)') as Libc['gettid'],
    getpid: lib.func('int getpid(void)') as Libc['getpid'],
    tgkill: lib.func('int tgkill(int tgid, int tid, int sig)') as Libc['tgkill'],
    strerror: describe,
  };
  return libc;
}

function fail(c: Libc, call: string): never {
  const errno = c.koffi.errno();
  throw new KvmSysError(call, errno, sharedLibc().errnoName(errno), c.strerror(errno));
}

export function sysOpen(path: string, flags: number): number {
  const c = load();
  const fd = c.open(path, flags);
  return fd >= 0 ? fd : fail(c, `open ${path}`);
}

export function sysClose(fd: number): void {
  load().close(fd);
}

/** ioctl with a buffer argument (the kernel reads and/or writes it); returns the non-negative result. */
export function ioctlBuffer(fd: number, request: number, name: string, arg: Uint8Array | null): number {
  const c = load();
  const r = c.ioctlPtr(fd, request, arg);
  return r >= 0 ? r : fail(c, name);
}

/** ioctl with an integer argument; returns the non-negative result. */
export function ioctlValue(fd: number, request: number, name: string, arg = 0): number {
  const c = load();
  const r = c.ioctlInt(fd, request, arg);
  return r >= 0 ? r : fail(c, name);
}

/** ioctl with an integer argument that may be interrupted: returns the result, or -errno. */
export function ioctlValueRaw(fd: number, request: number, arg = 0): number {
  const c = load();
  const r = c.ioctlInt(fd, request, arg);
  return r >= 0 ? r : -c.koffi.errno();
}

export interface Mapping {
  /** Zero-copy view of the mapping (at most 4 GiB per view). */
  readonly buffer: ArrayBuffer;
  /** The host virtual address, for KVM_SET_USER_MEMORY_REGION. */
  readonly address: bigint;
  unmap(): void;
}

function mapping(c: Libc, ptr: unknown, length: number, call: string): Mapping {
  const address = c.koffi.address(ptr);
  if (address === 0xffff_ffff_ffff_ffffn) fail(c, call);
  return { buffer: c.koffi.view(ptr, length), address, unmap: () => void c.munmap(ptr, length) };
}

/** Private anonymous read-write memory (guest RAM), reserved lazily by the kernel. */
export function mapAnonymous(length: number): Mapping {
  const c = load();
  const ptr = c.mmap(null, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return mapping(c, ptr, length, 'mmap(anonymous)');
}

/** A shared read-write mapping of a file descriptor (a vCPU's kvm_run area). */
export function mapShared(fd: number, length: number): Mapping {
  const c = load();
  const ptr = c.mmap(null, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  return mapping(c, ptr, length, 'mmap(kvm_run)');
}

export function currentThreadId(): number {
  return load().gettid();
}

/** Sends `signal` to one thread of this process. */
export function signalThread(tid: number, signal: number): void {
  const c = load();
  if (c.tgkill(c.getpid(), tid, signal) !== 0) fail(c, 'tgkill');
}
