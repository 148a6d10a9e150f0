/**
 * The `file` protocol: a BlockNode over a host file, read and written with
 * positional I/O on its descriptor (libuv thread pool, so many requests can be in
 * flight).
 *
 * Its size is the file's length. Requests past the end of the file are errors,
 * except through truncate() and writeGrow(). Like QEMU's file-posix:
 * - writeZeroes punches a hole (FALLOC_FL_PUNCH_HOLE|KEEP_SIZE) when the caller
 *   allows unmapping, else asks for FALLOC_FL_ZERO_RANGE, and falls back to writing
 *   zeroes where the filesystem can do neither (remembered per node);
 * - discard punches a hole, and is a no-op where that is not supported;
 * - blockStatus asks SEEK_DATA/SEEK_HOLE: holes are {data:false, zero:true}, data is
 *   {data:true, zero:false}; where the filesystem cannot tell, everything is data;
 * - with inlineCachedReads 'always', or 'pool-busy' while every thread of libuv's
 *   pool has a request of this module, a read first takes what the page cache holds
 *   on the calling thread (preadv2 with RWF_NOWAIT: a memory copy, no thread
 *   hand-off); bytes that would need the disk, 'pool-busy' reads while a pool
 *   thread is free, and every read where the kernel or filesystem cannot do that
 *   (remembered per node) go to the pool as usual; readCachedSync is that inline
 *   read alone, true only when the page cache gave the whole range at once (a
 *   range past the end of the file is declined: read() reports it);
 * - truncate grows with preallocation off (sparse), falloc (fallocate) or full (zeroes
 *   written); "metadata" is refused, as QEMU 7.2's file protocol refuses it (formats
 *   with metadata preallocate it themselves); growing an empty file writes its first
 *   4 KiB, as QEMU does so that alignment probing finds a block;
 * - opening takes QEMU's image locks (image-lock.ts): read (+write) sharing all;
 *   formats with metadata narrow that with lockForFormat(); -U (forceShare, read-only
 *   only) holds read and shares everything; creating holds write+resize.
 *   Errors read like QEMU's file-posix ones: "Could not open 'x': No such file or
 *   directory" for the open itself, bare 'Failed to get "write" lock\nIs another process
 *   using the image [x]?' for locks (callers add "Could not open 'x': " as qemu-img does).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { constants as fsConstants, read as fsRead, readv as fsReadv, write as fsWrite, writev as fsWritev } from 'node:fs';
import {
  type BlockExtent,
  BlockRequestError,
  type TruncateOptions,
  type WriteOptions,
  type ZeroOptions,
  checkRange,
} from '../node.js';
import {
  FALLOC_DEFAULT,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_ZERO_RANGE,
  SysError,
  fallocate,
  preadCached,
  seekData,
  seekHole,
} from './linux-sys.js';
import {
  CREATE_PERMISSIONS,
  ImageLock,
  type LockPermissions,
  PERM_RESIZE,
  imagePermissions,
} from './image-lock.js';
import type { InlineCachedReads, ProtocolNode, ProtocolOpenOptions } from './protocol.js';

export type FileOpenOptions = ProtocolOpenOptions;

/** errno codes that mean "this filesystem cannot do that fallocate mode". */
const UNSUPPORTED = new Set(['EOPNOTSUPP', 'ENOTSUP', 'ENOSYS', 'EINVAL', 'ENODEV']);

const ZERO_CHUNK = 1 << 20;
/** Most buffers one preadv takes (Linux's IOV_MAX). */
const IOV_MAX = 1024;
/** QEMU allocates this much at the start of a file it grows from empty. */
const FIRST_BLOCK = 4096;

/** This module's requests on libuv's pool (queued or running, all nodes). */
let poolRequests = 0;
/** The pool's threads: libuv reads UV_THREADPOOL_SIZE when the pool starts (default 4). */
const POOL_THREADS = Number(process.env.UV_THREADPOOL_SIZE) || 4;

/**
 * Issues one request onto libuv's pool through `issue`, counted while it is there:
 * counted on once `issue` has returned (an fs call that throws at once queues
 * nothing), off when its callback runs (fs callbacks never run synchronously),
 * then `done` gets the callback's arguments.
 */
function pooled<A extends unknown[]>(issue: (callback: (...args: A) => void) => void, done: (...args: A) => void): void {
  issue((...args: A) => {
    poolRequests--;
    done(...args);
  });
  poolRequests++;
}

function isUnsupported(e: unknown): boolean {
  return e instanceof SysError && UNSUPPORTED.has(e.code);
}

export class FileNode implements ProtocolNode {
  readonly driver = 'file';
  readonly file = null;
  readonly backing = null;
  readonly granularity = 512;
  private length: number;
  private canPunch = true;
  private canZeroRange = true;
  private canSeekData = true;
  /** When cached bytes are read on this thread (protocol.ts); undefined: never. */
  private readInline: InlineCachedReads | undefined;

  private constructor(
    readonly filename: string,
    readonly handle: FileHandle,
    readonly readOnly: boolean,
    readonly forceShare: boolean,
    private readonly lock: ImageLock,
    length: number,
    private readonly noFlush: boolean,
    inlineCachedReads: InlineCachedReads | undefined,
  ) {
    this.length = length;
    this.readInline = inlineCachedReads;
  }

  static async open(filename: string, opts: FileOpenOptions = {}): Promise<FileNode> {
    const readOnly = opts.readOnly ?? false;
    const forceShare = opts.forceShare ?? false;
    if (forceShare && !readOnly) throw new Error('force-share=on can only be used with read-only images');
    let flags = readOnly ? fsConstants.O_RDONLY : fsConstants.O_RDWR;
    if (opts.create) flags |= fsConstants.O_CREAT;
    let handle: FileHandle;
    try {
      handle = await open(filename, flags, 0o644);
    } catch (e) {
      throw new Error(`Could not ${opts.create ? 'create' : 'open'} '${filename}': ${describeErrno(e)}`);
    }
    try {
      const st = await handle.stat();
      if (st.isDirectory()) throw new Error(`Could not open '${filename}': Is a directory`);
      const perms = opts.create ? CREATE_PERMISSIONS : imagePermissions({ readOnly, forceShare, hasMetadata: false });
      const lock = ImageLock.acquire(handle.fd, filename, perms);
      if (opts.create) await handle.truncate(0);
      return new FileNode(filename, handle, readOnly, forceShare, lock, opts.create ? 0 : st.size, opts.noFlush ?? false, opts.inlineCachedReads);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  /** The image-lock permissions this node holds now. */
  get permissions(): LockPermissions {
    return this.lock.permissions;
  }

  /** Changes the held permissions; throws ImageLockError (keeping the old ones) on a conflict. */
  setPermissions(perms: LockPermissions): void {
    this.lock.update(perms);
  }

  /**
   * Takes the permissions QEMU takes for an image whose format keeps metadata in the
   * file (qcow2, …): others may then neither write nor resize it. Format drivers with
   * metadata call this from open() and create().
   */
  lockForFormat(hasMetadata: boolean): void {
    this.setPermissions(imagePermissions({ readOnly: this.readOnly, forceShare: this.forceShare, hasMetadata }));
  }

  size(): number {
    return this.length;
  }

  read(offset: number, buf: Uint8Array): Promise<void> {
    try {
      checkRange(this, this.length, offset, buf.length);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.readParts([buf], offset);
  }

  /** read() of each range; ranges that follow each other in the file are one request (preadv). */
  readRuns(runs: ReadonlyArray<{ offset: number; buf: Uint8Array }>): Promise<void> {
    try {
      for (const r of runs) checkRange(this, this.length, r.offset, r.buf.length);
    } catch (e) {
      return Promise.reject(e);
    }
    const reads: Promise<void>[] = [];
    for (let i = 0; i < runs.length;) {
      const first = runs[i]!;
      let end = first.offset + first.buf.length;
      let j = i + 1;
      for (; j < runs.length && j - i < IOV_MAX && runs[j]!.offset === end; j++) end += runs[j]!.buf.length;
      reads.push(this.readParts(runs.slice(i, j).map((r) => r.buf), first.offset));
      i = j;
    }
    return reads.length === 1 ? reads[0]! : Promise.all(reads).then(() => undefined);
  }

  /** Reads `parts` laid end to end from `offset`: cached bytes inline (when asked to), the rest on the pool. */
  private readParts(parts: Uint8Array[], offset: number): Promise<void> {
    let rest = parts;
    let at = offset;
    const cached = this.readsInlineNow() ? this.readCached(parts, offset) : 0;
    if (cached > 0) {
      const left = unfinishedParts(parts, cached);
      if (left.length === 0) return Promise.resolve();
      rest = left.map((r) => r.bytes);
      at = offset + left[0]!.at;
    }
    const fd = this.handle.fd;
    return rest.length === 1 ? preadAll(fd, rest[0]!, at) : preadvAll(fd, rest, at);
  }

  /**
   * The synchronous read (BlockNode.readCachedSync): when this node reads cached
   * bytes inline now, the whole range from the page cache in one preadv2, or false
   * (bytes that need the disk, the end of the file, inline reads off).
   */
  readCachedSync(offset: number, parts: readonly Uint8Array[], length: number): boolean {
    if (offset < 0 || offset + length > this.length || !this.readsInlineNow()) return false;
    return this.readCached(parts, offset) === length;
  }

  /** 'pool-busy' reads inline only while every pool thread has work: an idle one copies the bytes at no cost to this thread. */
  private readsInlineNow(): boolean {
    return this.readInline === 'always' || (this.readInline === 'pool-busy' && poolRequests >= POOL_THREADS);
  }

  /**
   * How many bytes from `offset` the page cache gave at once; 0 on any failure (the
   * pool's read reports it) and for more than IOV_MAX parts. A system without the
   * call (or without libc through koffi) turns inline reads off for the node.
   */
  private readCached(parts: readonly Uint8Array[], offset: number): number {
    // More buffers than one preadv2 takes (a guest's chain can hold that many) fail with EINVAL, which is not "unsupported".
    if (parts.length > IOV_MAX) return 0;
    try {
      return preadCached(this.handle.fd, parts, offset);
    } catch (e) {
      if (!(e instanceof SysError) || isUnsupported(e)) this.readInline = undefined;
      return 0;
    }
  }

  write(offset: number, buf: Uint8Array, opts?: WriteOptions): Promise<void> {
    try {
      this.checkWritable();
      checkRange(this, this.length, offset, buf.length);
    } catch (e) {
      return Promise.reject(e);
    }
    const written = this.writeAll(offset, buf);
    return opts?.fua ? written.then(() => this.handle.datasync()) : written;
  }

  /** Write past the end is allowed here: formats grow their files with it. */
  async writeGrow(offset: number, buf: Uint8Array): Promise<void> {
    this.checkWritable();
    await this.writeAll(offset, buf);
    if (offset + buf.length > this.length) this.length = offset + buf.length;
  }

  /** writeGrow of `parts` laid end to end, in one request (pwritev) unless the system writes less. */
  async writevGrow(offset: number, parts: readonly Uint8Array[]): Promise<void> {
    this.checkWritable();
    const total = parts.reduce((n, p) => n + p.length, 0);
    const done = await pwritevOnce(this.handle.fd, parts, offset);
    for (const rest of unfinishedParts(parts, done)) await this.writeAll(offset + rest.at, rest.bytes);
    if (offset + total > this.length) this.length = offset + total;
  }

  private writeAll(offset: number, buf: Uint8Array): Promise<void> {
    return pwriteAll(this.handle.fd, buf, offset);
  }

  async writeZeroes(offset: number, length: number, opts?: ZeroOptions): Promise<void> {
    this.checkWritable();
    checkRange(this, this.length, offset, length);
    if (length === 0) return;
    if (opts?.mayUnmap && this.punchHole(offset, length)) return;
    if (this.canZeroRange) {
      try {
        fallocate(this.handle.fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, length);
        return;
      } catch (e) {
        if (!isUnsupported(e)) throw this.ioError('write zeroes', offset, e);
        this.canZeroRange = false;
      }
    }
    await this.writeZeroBuffers(offset, length);
  }

  private async writeZeroBuffers(offset: number, length: number): Promise<void> {
    const chunk = new Uint8Array(Math.min(length, ZERO_CHUNK));
    for (let pos = 0; pos < length; pos += chunk.length) {
      const n = Math.min(chunk.length, length - pos);
      await this.writeAll(offset + pos, n === chunk.length ? chunk : chunk.subarray(0, n));
    }
  }

  /** Deallocates the range; false when the filesystem cannot punch holes. */
  private punchHole(offset: number, length: number): boolean {
    if (!this.canPunch) return false;
    try {
      fallocate(this.handle.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
      return true;
    } catch (e) {
      if (!isUnsupported(e)) throw this.ioError('punch a hole', offset, e);
      this.canPunch = false;
      return false;
    }
  }

  async discard(offset: number, length: number): Promise<void> {
    this.checkWritable();
    checkRange(this, this.length, offset, length);
    if (length > 0) this.punchHole(offset, length);
  }

  async flush(): Promise<void> {
    if (!this.readOnly && !this.noFlush) await this.handle.datasync();
  }

  async blockStatus(offset: number, length: number): Promise<BlockExtent> {
    checkRange(this, this.length, offset, length);
    const end = offset + length;
    const extent = (to: number, data: boolean): BlockExtent => ({
      offset,
      length: Math.min(to, end) - offset,
      allocated: true,
      data,
      zero: !data,
      compressed: false,
      hostOffset: offset,
    });
    if (!this.canSeekData || length === 0) return extent(end, true);
    try {
      const dataAt = seekData(this.handle.fd, offset);
      if (dataAt === null) return extent(end, false);
      if (dataAt > offset) return extent(dataAt, false);
      return extent(seekHole(this.handle.fd, offset), true);
    } catch (e) {
      if (!isUnsupported(e)) throw this.ioError('find holes', offset, e);
      this.canSeekData = false;
      return extent(end, true);
    }
  }

  async truncate(size: number, opts?: TruncateOptions): Promise<void> {
    this.checkWritable();
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new BlockRequestError(`${this.filename}: invalid size ${size}`);
    }
    const prealloc = opts?.preallocation ?? 'off';
    const old = this.length;
    if (size < old && !opts?.shrink) {
      throw new BlockRequestError(`${this.filename}: cannot shrink the file without shrinking allowed`);
    }
    if (prealloc === 'metadata') throw new BlockRequestError('Unsupported preallocation mode: metadata');
    if (size < old && (prealloc === 'falloc' || prealloc === 'full')) {
      throw new BlockRequestError(`${this.filename}: Cannot use preallocation for shrinking files`);
    }
    if (size !== old && !(this.lock.permissions.perm & PERM_RESIZE)) {
      const held = this.lock.permissions;
      this.setPermissions({ perm: held.perm | PERM_RESIZE, shared: held.shared });
    }
    if (prealloc === 'falloc' && size > old) {
      try {
        fallocate(this.handle.fd, FALLOC_DEFAULT, old, size - old);
      } catch (e) {
        throw new Error(`${this.filename}: Could not preallocate new data: ${(e as Error).message}`);
      }
    } else {
      await this.handle.truncate(size);
    }
    this.length = size;
    if (prealloc === 'full' && size > old) await this.writeZeroBuffers(old, size - old);
    if (old === 0 && size > 0 && prealloc !== 'full') {
      await this.writeAll(0, new Uint8Array(Math.min(size, FIRST_BLOCK)));
    }
  }

  async allocatedSize(): Promise<number> {
    const st = await this.handle.stat();
    return st.blocks * 512;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  private checkWritable(): void {
    if (this.readOnly) throw new Error(`${this.filename}: the image is opened read-only`);
  }

  private ioError(what: string, offset: number, e: unknown): Error {
    return new Error(`${this.filename}: failed to ${what} at offset ${offset}: ${(e as Error).message}`);
  }
}

/*
 * One positional read or write on the descriptor. The callback API costs less per
 * request than FileHandle's promise methods (measured: about 30% more throughput
 * for 64 KiB requests), and this is the hot path of convert.
 */
function preadAll(fd: number, buf: Uint8Array, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = 0;
    const step = (err: Error | null, n: number): void => {
      if (err) return reject(err);
      done += n;
      // n === 0: the file shrank under us; the rest reads as zeroes, like a hole.
      if (n === 0) buf.fill(0, done);
      if (n === 0 || done >= buf.length) return resolve();
      pooled((cb) => fsRead(fd, buf, done, buf.length - done, position + done, cb), step);
    };
    if (buf.length === 0) return resolve();
    pooled((cb) => fsRead(fd, buf, 0, buf.length, position, cb), step);
  });
}

/** preadv of `parts` laid end to end; what a short read leaves is read part by part. */
function preadvAll(fd: number, parts: Uint8Array[], position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    pooled((cb) => fsReadv(fd, parts, position, cb), (err: Error | null, n: number) => {
      if (err) return reject(err);
      const rest = unfinishedParts(parts, n).map((r) => preadAll(fd, r.bytes, position + r.at));
      if (rest.length === 0) resolve();
      else Promise.all(rest).then(() => resolve(), reject);
    });
  });
}

/**
 * What a vectored transfer of `parts` laid end to end left undone after `done`
 * bytes: each unfinished part's remaining bytes and their offset from the start.
 */
function unfinishedParts(parts: readonly Uint8Array[], done: number): Array<{ at: number; bytes: Uint8Array }> {
  const rest: Array<{ at: number; bytes: Uint8Array }> = [];
  for (let at = 0, i = 0; i < parts.length; at += parts[i]!.length, i++) {
    const part = parts[i]!;
    if (at + part.length <= done) continue;
    const from = Math.max(0, done - at);
    rest.push({ at: at + from, bytes: part.subarray(from) });
  }
  return rest;
}

function pwriteAll(fd: number, buf: Uint8Array, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = 0;
    const step = (err: Error | null, n: number): void => {
      if (err) return reject(err);
      done += n;
      if (done >= buf.length) return resolve();
      pooled((cb) => fsWrite(fd, buf, done, buf.length - done, position + done, cb), step);
    };
    if (buf.length === 0) return resolve();
    pooled((cb) => fsWrite(fd, buf, 0, buf.length, position, cb), step);
  });
}

function pwritevOnce(fd: number, parts: readonly Uint8Array[], position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    pooled((cb) => fsWritev(fd, parts as Uint8Array[], position, cb), (err: Error | null, n: number) => (err ? reject(err) : resolve(n)));
  });
}

/** "No such file or directory" from a Node fs error, like strerror in qemu-img's messages. */
export function describeErrno(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const known: Record<string, string> = {
    ENOENT: 'No such file or directory',
    EACCES: 'Permission denied',
    EISDIR: 'Is a directory',
    EROFS: 'Read-only file system',
    ENOSPC: 'No space left on device',
    EEXIST: 'File exists',
  };
  return (err.code && known[err.code]) ?? err.message ?? String(e);
}
