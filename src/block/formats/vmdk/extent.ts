/**
 * What a VMDK image is made of: extents laid end to end, each a ProtocolNode region
 * (FLAT, VMFS), a run of zeroes (ZERO), or a sparse extent (sparse.ts). The node
 * above asks an extent what backs a position (lookup: a run of one kind), reads
 * allocated runs through it, and hands it writes together with a way to read what
 * lies below (the backing image), which a sparse extent needs to fill the rest of
 * a grain it allocates.
 */
import { ImageFormatError } from '../../node.js';
import type { ProtocolNode } from '../../protocols/protocol.js';

export const RUN_UNALLOCATED = 0;
export const RUN_ZERO = 1;
export const RUN_DATA = 2;
export const RUN_COMPRESSED = 3;
export type RunKind = typeof RUN_UNALLOCATED | typeof RUN_ZERO | typeof RUN_DATA | typeof RUN_COMPRESSED;

export interface ExtentRun {
  kind: RunKind;
  /** Bytes from the asked offset that share this kind (and, for data, contiguous host bytes). */
  length: number;
  /** Host offset in the extent's file for RUN_DATA, else -1. */
  host: number;
}

/** Reads what the image shows below this extent at extent-relative `offset` (backing file or zeroes). */
export type ReadBelow = (offset: number, buf: Uint8Array) => Promise<void>;

export interface Extent {
  /** Virtual bytes. */
  readonly size: number;
  readonly file: ProtocolNode | null;
  /** Allocation unit in bytes (grain size; 512 for flat). */
  readonly granularity: number;
  lookup(offset: number, length: number): Promise<ExtentRun>;
  /** Reads a range lookup() called data or compressed. */
  readAllocated(offset: number, buf: Uint8Array): Promise<void>;
  /** Writes a range of any length inside the extent. */
  write(offset: number, buf: Uint8Array, below: ReadBelow): Promise<void>;
  /** Zeroes a range; `whole` ranges the extent may mark zero instead of writing (zeroed grains). */
  writeZeroes(offset: number, length: number, below: ReadBelow, hasBacking: boolean): Promise<void>;
  /** Makes metadata the extent keeps in memory durable (stream-optimized directories). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** A FLAT or VMFS extent: `size` bytes of `file` from `base`; bytes past the file's end read as zeroes. */
export class FlatExtent implements Extent {
  readonly granularity = 512;
  constructor(readonly file: ProtocolNode, readonly size: number, private readonly base: number, private readonly owned: boolean) {}

  async lookup(offset: number, length: number): Promise<ExtentRun> {
    return { kind: RUN_DATA, length: Math.min(length, this.size - offset), host: this.base + offset };
  }

  async readAllocated(offset: number, buf: Uint8Array): Promise<void> {
    const host = this.base + offset;
    const inFile = Math.max(0, Math.min(buf.length, this.file.size() - host));
    if (inFile > 0) await this.file.read(host, buf.subarray(0, inFile));
    buf.fill(0, inFile);
  }

  async write(offset: number, buf: Uint8Array): Promise<void> {
    await this.file.writeGrow(this.base + offset, buf);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    const host = this.base + offset;
    const inFile = Math.max(0, Math.min(length, this.file.size() - host));
    if (inFile > 0) await this.file.writeZeroes(host, inFile);
    if (inFile < length) await this.file.truncate(host + length);
  }

  async flush(): Promise<void> { await this.file.flush(); }
  async close(): Promise<void> { if (this.owned) await this.file.close(); }
}

/** A ZERO extent: reads as zeroes, cannot be written. */
export class ZeroExtent implements Extent {
  readonly granularity = 512;
  readonly file = null;
  constructor(readonly size: number) {}
  async lookup(offset: number, length: number): Promise<ExtentRun> {
    return { kind: RUN_ZERO, length: Math.min(length, this.size - offset), host: -1 };
  }
  async readAllocated(_offset: number, buf: Uint8Array): Promise<void> { buf.fill(0); }
  async write(): Promise<void> { throw new ImageFormatError('cannot write to a ZERO extent of a VMDK image'); }
  async writeZeroes(): Promise<void> {}
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}
