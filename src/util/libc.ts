/**
 * The C library through koffi (an FFI: no compiler at install), shared by the
 * modules that make system calls of their own: file locks and preallocation,
 * TUN/TAP, poll and eventfd, ICMP sockets, KVM. koffi and libc load once per
 * thread, on first use (koffi works in worker threads); each module declares the
 * functions it needs on the one library handle and reports a failed call's errno
 * by its name and its strerror text from here.
 *
 * Loading koffi through its package costs about 7 ms of CPU (resolving two
 * packages, compiling its loader, reading Node's ELF header to tell glibc from
 * musl) against about 1 ms for its native module alone, and every img command
 * pays it (image locks). So the native module of this platform's glibc build,
 * which is what that loader picks on a glibc system, is required directly; if it
 * is not there or does not load (musl, another layout), the package loads as usual.
 */
import { createRequire } from 'node:module';
import type * as Koffi from 'koffi';

export interface Libc {
  readonly koffi: typeof Koffi;
  readonly lib: Koffi.LibraryHandle;
  /** The errno the last call on this thread left. */
  errno(): number;
  /** strerror(errno). */
  describe(errno: number): string;
  /** The errno's symbolic name (e.g. EAGAIN), or "errno N". */
  errnoName(errno: number): string;
}

let loaded: Libc | null = null;

function loadKoffi(): typeof Koffi {
  const require = createRequire(import.meta.url);
  const { platform, arch } = process;
  try {
    return require(`@koromix/koffi-${platform}-${arch}/${platform}_${arch}/koffi.node`) as typeof Koffi;
  } catch {
    return require('koffi') as typeof Koffi;
  }
}

export function libc(): Libc {
  if (loaded) return loaded;
  const koffi = loadKoffi();
  const lib = koffi.load('libc.so.6');
  const strerror = lib.func('const char *strerror(int errnum)') as (errnum: number) => string;
  // Made on the first failed call's report, not at load (about 0.25 ms: koffi builds its errno table on access).
  let names: Map<number, string> | undefined;
  const errnoNames = (): Map<number, string> => {
    if (names === undefined) {
      names = new Map();
      for (const [name, value] of Object.entries(koffi.os.errno)) {
        if (!names.has(value)) names.set(value, name);
      }
    }
    return names;
  };
  loaded = {
    koffi,
    lib,
    errno: () => koffi.errno(),
    describe: (errno) => strerror(errno),
    errnoName: (errno) => errnoNames().get(errno) ?? `errno ${errno}`,
  };
  return loaded;
}
