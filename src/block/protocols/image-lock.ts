/**
 * Image locking with QEMU's convention, so tsemu and qemu-img/qemu-io/qemu-system keep
 * each other from corrupting an image they both have open.
 *
 * A user of an image holds a set of permissions (bit 0 consistent read, bit 1 write,
 * bit 2 write unchanged, bit 3 resize) and shares some of them with other users.
 * QEMU's file-posix records this in the image file itself with shared (F_RDLCK)
 * open-file-description locks on single bytes: byte 100+bit for each permission held,
 * byte 200+bit for each permission NOT shared. A new user conflicts when someone else
 * locks 200+bit for a permission it wants ('Failed to get "write" lock'), or 100+bit for
 * a permission it will not share ('Failed to get shared "write" lock'). The probe for
 * someone else's lock is F_OFD_GETLK with a write lock, which sees every other open file
 * description's read locks but never our own.
 *
 * The permission sets QEMU 7.2 takes (observed in /proc/locks):
 *   raw, read-only: hold read; share all.   raw, read-write: hold read+write; share all.
 *   qcow2 and other formats with metadata: hold read (+write+resize when writable) and
 *   never share write or resize, read-only or not.
 *   -U/--force-share (read-only only): hold read, share all.
 *   creating a file: hold write+resize, share all but resize.
 *
 * States: an ImageLock holds the bytes for its current permissions; update() moves to
 * new permissions by first adding the new bytes, then checking for conflicts, then
 * dropping bytes no longer needed (on conflict it goes back to the old set). The locks
 * go away when the file descriptor is closed. Each step sets or clears only the bytes
 * whose state changes: the ImageLock is the only user of its open file description's
 * locks, so it knows which bytes it holds (a new description holds none), and an img
 * command's opens and permission changes make about a third of the fcntl calls that
 * setting all eight bytes every time made.
 */
import { F_RDLCK, F_UNLCK, ofdSetLock, ofdTestLock, F_WRLCK, SysError } from './linux-sys.js';

export const PERM_CONSISTENT_READ = 0x1;
export const PERM_WRITE = 0x2;
export const PERM_WRITE_UNCHANGED = 0x4;
export const PERM_RESIZE = 0x8;
export const PERM_ALL = 0xf;

const PERM_NAMES: ReadonlyArray<readonly [number, string]> = [
  [PERM_CONSISTENT_READ, 'consistent read'],
  [PERM_WRITE, 'write'],
  [PERM_WRITE_UNCHANGED, 'write unchanged'],
  [PERM_RESIZE, 'resize'],
];

const PERM_LOCK_BASE = 100;
const SHARED_LOCK_BASE = 200;

/** What a user of an image holds and what it lets others hold at the same time. */
export interface LockPermissions {
  perm: number;
  shared: number;
}

/** Another process (or open) holds the image in a way that excludes ours. */
export class ImageLockError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImageLockError';
  }
}

/** The permissions QEMU takes for an image opened by a format of this kind. */
export function imagePermissions(opts: { readOnly: boolean; forceShare?: boolean; hasMetadata: boolean }): LockPermissions {
  if (opts.forceShare) return { perm: PERM_CONSISTENT_READ, shared: PERM_ALL };
  if (!opts.hasMetadata) {
    return { perm: PERM_CONSISTENT_READ | (opts.readOnly ? 0 : PERM_WRITE), shared: PERM_ALL };
  }
  return {
    perm: PERM_CONSISTENT_READ | (opts.readOnly ? 0 : PERM_WRITE | PERM_RESIZE),
    shared: PERM_ALL & ~(PERM_WRITE | PERM_RESIZE),
  };
}

/** The permissions QEMU's file protocol takes while it creates (truncates) a file. */
export const CREATE_PERMISSIONS: LockPermissions = {
  perm: PERM_WRITE | PERM_RESIZE,
  shared: PERM_ALL & ~PERM_RESIZE,
};

export class ImageLock {
  private held: LockPermissions = { perm: 0, shared: PERM_ALL };
  /** The bytes this description has locked: bit i for byte 100+i, bit 4+i for byte 200+i. */
  private lockedBytes = 0;

  private constructor(
    private readonly fd: number,
    private readonly filename: string,
  ) {}

  /** Takes the locks for `perms` on an open file, or throws ImageLockError on a conflict. */
  static acquire(fd: number, filename: string, perms: LockPermissions): ImageLock {
    const lock = new ImageLock(fd, filename);
    lock.update(perms);
    return lock;
  }

  get permissions(): LockPermissions {
    return { ...this.held };
  }

  /** Moves to new permissions; on a conflict keeps the old ones and throws. */
  update(perms: LockPermissions): void {
    const old = this.held;
    try {
      this.applyBytes(perms.perm | old.perm, ~perms.shared | ~old.shared);
      this.check(perms);
    } catch (e) {
      this.applyBytes(old.perm, ~old.shared);
      throw e;
    }
    this.applyBytes(perms.perm, ~perms.shared);
    this.held = { perm: perms.perm & PERM_ALL, shared: perms.shared & PERM_ALL };
  }

  /** Holds exactly the bytes for `perm` held and `unshared` not shared. */
  private applyBytes(perm: number, unshared: number): void {
    for (const [bit] of PERM_NAMES) {
      const index = Math.log2(bit);
      this.setByte(PERM_LOCK_BASE + index, 1 << index, (perm & bit) !== 0);
      this.setByte(SHARED_LOCK_BASE + index, 1 << (4 + index), (unshared & bit) !== 0);
    }
  }

  /** Locks or unlocks byte `offset` (`mask` in lockedBytes) unless it is already so. */
  private setByte(offset: number, mask: number, locked: boolean): void {
    if (((this.lockedBytes & mask) !== 0) === locked) return;
    try {
      ofdSetLock(this.fd, locked ? F_RDLCK : F_UNLCK, offset, 1);
      this.lockedBytes ^= mask;
    } catch (e) {
      if (e instanceof SysError && locked) {
        throw new ImageLockError(`Failed to lock byte ${offset}\nIs another process using the image [${this.filename}]?`);
      }
      throw e;
    }
  }

  private check(perms: LockPermissions): void {
    for (const [bit, name] of PERM_NAMES) {
      const index = Math.log2(bit);
      if (perms.perm & bit && ofdTestLock(this.fd, F_WRLCK, SHARED_LOCK_BASE + index, 1) !== null) {
        throw new ImageLockError(`Failed to get "${name}" lock\nIs another process using the image [${this.filename}]?`);
      }
    }
    for (const [bit, name] of PERM_NAMES) {
      const index = Math.log2(bit);
      if (~perms.shared & bit && ofdTestLock(this.fd, F_WRLCK, PERM_LOCK_BASE + index, 1) !== null) {
        throw new ImageLockError(
          `Failed to get shared "${name}" lock\nIs another process using the image [${this.filename}]?`,
        );
      }
    }
  }
}
