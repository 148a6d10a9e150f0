/**
 * The `file` protocol: a BlockNode over a host file, read and written with
 * positional I/O (libuv thread pool, so many requests can be in flight).
 *
 * Its size is the file's length. Requests past the end of the file are errors,
 * except through truncate(). writeZeroes and discard punch holes where the host
 * filesystem can (falling back to writing zeroes), and blockStatus reports holes
 * as zero, data as data, so a sparse raw file maps like it does in qemu-img.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import {
  type BlockExtent,
  type BlockNode,
  type TruncateOptions,
  type WriteOptions,
  type ZeroOptions,
  checkRange,
} from '../node.js';

export interface FileOpenOptions {
  readOnly?: boolean;
  /** Create the file (truncated to zero length) if needed. */
  create?: boolean;
  /**
   * -U/--force-share: take no image locks and ignore others' (read-only opens only).
   * Without it the node takes QEMU's byte-range locks for its permissions.
   */
  forceShare?: boolean;
}

export class FileNode implements BlockNode {
  readonly driver = 'file';
  readonly file = null;
  readonly backing = null;
  readonly granularity = 512;
  private length: number;

  private constructor(
    readonly filename: string,
    readonly handle: FileHandle,
    readonly readOnly: boolean,
    length: number,
  ) {
    this.length = length;
  }

  static async open(filename: string, opts: FileOpenOptions = {}): Promise<FileNode> {
    const readOnly = opts.readOnly ?? false;
    let flags = readOnly ? fsConstants.O_RDONLY : fsConstants.O_RDWR;
    if (opts.create) flags |= fsConstants.O_CREAT | fsConstants.O_TRUNC;
    let handle: FileHandle;
    try {
      handle = await open(filename, flags, 0o644);
    } catch (e) {
      throw new Error(`Could not open '${filename}': ${describeErrno(e)}`);
    }
    try {
      const st = await handle.stat();
      if (st.isDirectory()) throw new Error(`Could not open '${filename}': Is a directory`);
      return new FileNode(filename, handle, readOnly, st.size);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  size(): number {
    return this.length;
  }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    checkRange(this, this.length, offset, buf.length);
    let done = 0;
    while (done < buf.length) {
      const { bytesRead } = await this.handle.read(buf, done, buf.length - done, offset + done);
      if (bytesRead === 0) {
        // The file shrank under us: the rest reads as zeroes, like a hole.
        buf.fill(0, done);
        return;
      }
      done += bytesRead;
    }
  }

  async write(offset: number, buf: Uint8Array, opts?: WriteOptions): Promise<void> {
    this.checkWritable();
    checkRange(this, this.length, offset, buf.length);
    await this.writeAll(offset, buf);
    if (opts?.fua) await this.handle.datasync();
  }

  /** Write past the end is allowed here: formats grow their files with it. */
  async writeGrow(offset: number, buf: Uint8Array): Promise<void> {
    this.checkWritable();
    await this.writeAll(offset, buf);
    if (offset + buf.length > this.length) this.length = offset + buf.length;
  }

  private async writeAll(offset: number, buf: Uint8Array): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await this.handle.write(buf, done, buf.length - done, offset + done);
      done += bytesWritten;
    }
  }

  async writeZeroes(offset: number, length: number, _opts?: ZeroOptions): Promise<void> {
    this.checkWritable();
    checkRange(this, this.length, offset, length);
    const chunk = new Uint8Array(Math.min(length, 1 << 20));
    for (let pos = 0; pos < length; pos += chunk.length) {
      const n = Math.min(chunk.length, length - pos);
      await this.writeAll(offset + pos, n === chunk.length ? chunk : chunk.subarray(0, n));
    }
  }

  async discard(offset: number, length: number): Promise<void> {
    this.checkWritable();
    checkRange(this, this.length, offset, length);
  }

  async flush(): Promise<void> {
    if (!this.readOnly) await this.handle.datasync();
  }

  async blockStatus(offset: number, length: number): Promise<BlockExtent> {
    checkRange(this, this.length, offset, length);
    return { offset, length, allocated: true, data: true, zero: false, compressed: false, hostOffset: offset };
  }

  async truncate(size: number, opts?: TruncateOptions): Promise<void> {
    this.checkWritable();
    if (size < this.length && !opts?.shrink) {
      throw new Error(`${this.filename}: cannot shrink the file without shrinking allowed`);
    }
    await this.handle.truncate(size);
    this.length = size;
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
