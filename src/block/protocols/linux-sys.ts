/**
 * Linux system calls Node's fs module does not offer, reached through koffi (an FFI
 * to the C library, no compiler needed): fallocate (allocate, punch holes, zero
 * ranges), lseek with SEEK_DATA/SEEK_HOLE (find holes in sparse files), fcntl
 * open-file-description byte-range locks (F_OFD_SETLK/F_OFD_GETLK, the locks QEMU
 * uses for its image locking) and preadv2 with RWF_NOWAIT (read what the page
 * cache holds, never wait for the disk).
 *
 * koffi and libc are loaded on the first call, not at import, so commands that never
 * need these calls start fast. All calls are synchronous: each is one short system
 * call (hole punching and SEEK_DATA only touch file metadata; a RWF_NOWAIT read
 * copies from memory or returns at once). A failure throws a
 * SysError that carries the errno name (`code`, e.g. "EOPNOTSUPP") and the C
 * library's message; callers decide which codes mean "not supported here, fall back".
 */
import type * as Koffi from 'koffi';
import { libc as sharedLibc } from '../../util/libc.js';

/** fallocate(2) modes (linux/falloc.h). */
export const FALLOC_DEFAULT = 0;
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;

/** preadv2 flag (linux/fs.h): fail with EAGAIN instead of waiting for I/O. */
const RWF_NOWAIT = 0x08;
const EAGAIN = 11;
const EINTR = 4;

const SEEK_DATA = 3;
const SEEK_HOLE = 4;

/** fcntl(2) commands and lock types (Linux, every architecture). */
const F_OFD_GETLK = 36;
const F_OFD_SETLK = 37;
const SEEK_SET = 0;
export const F_RDLCK = 0;
export const F_WRLCK = 1;
export const F_UNLCK = 2;
export type LockType = typeof F_RDLCK | typeof F_WRLCK | typeof F_UNLCK;

/** A failed system call: `code` is the errno name, `errno` its number. */
export class SysError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
    readonly code: string,
    readonly description: string,
  ) {
    super(`${call}: ${description}`);
    this.name = 'SysError';
  }
}

interface Flock {
  l_type: number;
  l_whence: number;
  l_start: number;
  l_len: number;
  l_pid: number;
}

interface Iovec {
  base: Uint8Array;
  len: number;
}

type Preadv2 = (fd: number, iov: Iovec[], count: number, offset: number, flags: number) => number;

interface Libc {
  koffi: typeof Koffi;
  fallocate: (fd: number, mode: number, offset: number, len: number) => number;
  lseek: (fd: number, offset: number, whence: number) => number;
  fcntlLock: (fd: number, cmd: number, lock: Flock) => number;
  strerror: (errnum: number) => string;
}

let libc: Libc | null = null;

function load(): Libc {
  if (libc) return libc;
  const { koffi, lib, describe } = sharedLibc();
  const flock = koffi.struct('tsemu_flock', {
    l_type: 'short',
    l_whence: 'short',
    l_start: 'int64_t',
    l_len: 'int64_t',
    l_pid: 'int',
  });
  libc = {
    koffi,
    fallocate: lib.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)') as Libc['fallocate'],
    lseek: lib.func('int64_t lseek(int fd, int64_t offset, int whence)') as Libc['lseek'],
    // fcntl is variadic in C; the lock commands take exactly one pointer argument.
    fcntlLock: lib.func('fcntl', 'int', ['int', 'int', koffi.inout(koffi.pointer(flock))]) as Libc['fcntlLock'],
    strerror: describe,
  };
  return libc;
}

let preadv2: Preadv2 | null = null;

/**
 * preadv2, looked up apart from load()'s calls (with an anonymous iovec type), so
 * a libc without it fails only preadCached, never the locks or fallocate, and a
 * retry registers no type name twice.
 */
function loadPreadv2(): Preadv2 {
  if (preadv2) return preadv2;
  const { koffi, lib } = sharedLibc();
  const iovec = koffi.struct({ base: 'void *', len: 'size_t' });
  preadv2 = lib.func('preadv2', 'int64_t', ['int', koffi.pointer(iovec), 'int', 'int64_t', 'int']) as Preadv2;
  return preadv2;
}

function fail(c: Libc, call: string): never {
  const errno = c.koffi.errno();
  // koffi's table names EOPNOTSUPP as ENOTSUP on Linux (same number); name both alike.
  const code = errno === 95 ? 'EOPNOTSUPP' : sharedLibc().errnoName(errno);
  throw new SysError(call, errno, code, c.strerror(errno));
}

/** fallocate(2) with one of the FALLOC_* modes (KEEP_SIZE may be or-ed in). */
export function fallocate(fd: number, mode: number, offset: number, length: number): void {
  const c = load();
  for (;;) {
    if (c.fallocate(fd, mode, offset, length) === 0) return;
    if (c.koffi.errno() !== EINTR) fail(c, 'fallocate');
  }
}

/**
 * preadv2(RWF_NOWAIT) of `parts` laid end to end from `offset`: copies what the
 * page cache holds at once and returns how many bytes it read, 0 when the first
 * bytes would need the disk (EAGAIN). Fewer bytes than asked mean the rest needs
 * I/O (or the file ends there). Other failures, including a kernel or filesystem
 * without RWF_NOWAIT for reads (EOPNOTSUPP), throw a SysError.
 */
export function preadCached(fd: number, parts: readonly Uint8Array[], offset: number): number {
  const c = load();
  const read = loadPreadv2();
  const iov = parts.map((p) => ({ base: p, len: p.length }));
  for (;;) {
    const n = read(fd, iov, iov.length, offset, RWF_NOWAIT);
    if (n >= 0) return n;
    const errno = c.koffi.errno();
    if (errno === EAGAIN) return 0;
    if (errno !== EINTR) fail(c, 'preadv2');
  }
}

/**
 * Where the next data at or after `offset` starts (SEEK_DATA), or null if only a hole
 * follows up to the end of the file.
 */
export function seekData(fd: number, offset: number): number | null {
  const c = load();
  const r = c.lseek(fd, offset, SEEK_DATA);
  if (r >= 0) return r;
  if (c.koffi.errno() === 6 /* ENXIO */) return null;
  return fail(c, 'lseek(SEEK_DATA)');
}

/** Where the next hole at or after `offset` starts (SEEK_HOLE; the end of file is a hole). */
export function seekHole(fd: number, offset: number): number {
  const c = load();
  const r = c.lseek(fd, offset, SEEK_HOLE);
  if (r >= 0) return r;
  return fail(c, 'lseek(SEEK_HOLE)');
}

/**
 * Takes (F_RDLCK/F_WRLCK) or releases (F_UNLCK) an open-file-description lock on
 * `length` bytes at `start`, without waiting: a conflicting lock is a SysError
 * (EAGAIN or EACCES).
 */
export function ofdSetLock(fd: number, type: LockType, start: number, length: number): void {
  const c = load();
  const lock: Flock = { l_type: type, l_whence: SEEK_SET, l_start: start, l_len: length, l_pid: 0 };
  if (c.fcntlLock(fd, F_OFD_SETLK, lock) !== 0) fail(c, 'fcntl(F_OFD_SETLK)');
}

/**
 * Would a lock of `type` on the range conflict with a lock held through another open
 * file description (in any process)? Returns the type of the conflicting lock, or
 * null when there is none.
 */
export function ofdTestLock(fd: number, type: LockType, start: number, length: number): LockType | null {
  const c = load();
  const lock: Flock = { l_type: type, l_whence: SEEK_SET, l_start: start, l_len: length, l_pid: 0 };
  if (c.fcntlLock(fd, F_OFD_GETLK, lock) !== 0) fail(c, 'fcntl(F_OFD_GETLK)');
  return lock.l_type === F_UNLCK ? null : (lock.l_type as LockType);
}
