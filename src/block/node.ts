/**
 * The block layer's one interface. Every protocol (file, later http and nbd) and
 * every format (raw, qcow2, …) is a BlockNode: a byte-addressed virtual disk of a
 * fixed size that can be read, written, zeroed, discarded and flushed, and asked
 * what it holds where (blockStatus). A format node sits on a protocol node (its
 * `file` child) and may have a `backing` node: reads of ranges the format node
 * does not allocate fall through to the backing node, which is the whole
 * copy-on-write overlay story.
 *
 * Offsets and lengths are plain numbers (byte counts below 2^53). Operations that
 * are written once for every format (convert, commit, map, compare, …) live in
 * block/ops/ and use only this interface.
 */

/** QEMU's preallocation modes (`-o preallocation=`). */
export type Preallocation = 'off' | 'metadata' | 'falloc' | 'full';

/**
 * What one node says about a range starting at `offset`, for `length` bytes that all
 * share the same status (QEMU's bdrv_block_status for a single layer).
 */
export interface BlockExtent {
  offset: number;
  length: number;
  /** This node defines the range's content; false means it defers to its backing node. */
  allocated: boolean;
  /** The range is stored as data (not known to read as zeroes without looking). */
  data: boolean;
  /** The range is known to read as zeroes. */
  zero: boolean;
  /** The range is stored compressed (qcow2 compressed clusters). */
  compressed: boolean;
  /** Where the range starts in this node's `file` child, when it is stored there contiguously. */
  hostOffset: number | null;
}

export interface WriteOptions {
  /** Write through to stable storage before returning (FUA). */
  fua?: boolean;
}

export interface ZeroOptions {
  /** The node may deallocate the range instead of writing zeroes (QEMU's BDRV_REQ_MAY_UNMAP). */
  mayUnmap?: boolean;
}

export interface TruncateOptions {
  preallocation?: Preallocation;
  /** Allow the size to go down (qemu-img resize --shrink). */
  shrink?: boolean;
}

export interface BlockNode {
  /** Driver name as qemu-img prints it: "file", "raw", "qcow2", … */
  readonly driver: string;
  /** The name the node was opened with (for formats: the image file name). */
  readonly filename: string;
  readonly readOnly: boolean;
  /** Protocol child of a format node; null for protocol nodes. */
  readonly file: BlockNode | null;
  /** Backing node, if the image has one and it was opened. */
  readonly backing: BlockNode | null;
  /**
   * The granularity at which this node allocates: writes aligned to it avoid
   * read-modify-write (qcow2: the cluster size; raw/file: 512).
   */
  readonly granularity: number;

  /** Virtual size in bytes. */
  size(): number;
  read(offset: number, buf: Uint8Array): Promise<void>;
  write(offset: number, buf: Uint8Array, opts?: WriteOptions): Promise<void>;
  writeZeroes(offset: number, length: number, opts?: ZeroOptions): Promise<void>;
  discard(offset: number, length: number): Promise<void>;
  flush(): Promise<void>;
  /** Status of this node alone for the longest run at `offset`, at most `length` bytes. */
  blockStatus(offset: number, length: number): Promise<BlockExtent>;
  truncate(size: number, opts?: TruncateOptions): Promise<void>;
  /** Bytes the node's storage takes on the host (qemu-img's "disk size"). */
  allocatedSize(): Promise<number>;
  /** Closes this node and its `file` child; the backing chain is closed by closeImage(). */
  close(): Promise<void>;

  /**
   * Optional: store `buf` (whole clusters, cluster-aligned, the last one may be
   * short at the end of the image) compressed. Present on formats that support it.
   */
  writeCompressed?(offset: number, buf: Uint8Array): Promise<void>;

  /**
   * Optional: writes several ranges (ascending, disjoint) as one request, with the
   * same result as one write() per range. Formats that can place them together
   * (qcow2: fresh clusters of one request follow each other) save requests.
   */
  writeRuns?(runs: ReadonlyArray<{ offset: number; buf: Uint8Array }>): Promise<void>;

  /**
   * Optional: reads several disjoint ranges as one request, with the same result as
   * one read() per range. Nodes that can join ranges stored one after another (a
   * file: one preadv; qcow2: clusters that follow each other in its file) save requests.
   */
  readRuns?(runs: ReadonlyArray<{ offset: number; buf: Uint8Array }>): Promise<void>;

  /**
   * Optional: reads [offset, offset + length) into `parts` laid end to end (their
   * lengths add up to `length`) on the calling thread, before returning, or declines.
   * True only when every byte was read now; false when any piece would need I/O,
   * a wait or work this path does not do (bytes not in the host's page cache, an
   * uncached qcow2 L2 table, a qcow2 image with a metadata change running or
   * waiting, compressed clusters, ranges past the end of a file or its backing
   * node, a range outside the node); it never throws (read() reports errors).
   * After false the parts may hold some of the range's bytes: the caller reads the
   * whole range again with read() (if that fails, those bytes stay). A true
   * answer sees every write that has completed, as read() would. For callers
   * whose every request waits for its read (a guest's disk), where a promise and
   * a hand-off cost more than a cached read.
   */
  readCachedSync?(offset: number, parts: readonly Uint8Array[], length: number): boolean;

  /**
   * Optional: blockStatus as a copy sees it. Where blockStatus reports plain data
   * because QEMU's driver reports nothing finer (vhdx, so that img map prints
   * what qemu-img prints), this may also report ranges known to read as zeroes
   * (holes in the node's file), which a copy then need not read or scan.
   */
  copyStatus?(offset: number, length: number): Promise<BlockExtent>;
}

/** Error raised when an image's content is invalid; the message names what is wrong. */
export class ImageFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImageFormatError';
  }
}

/** Error raised for a request outside the node's bounds or misuse of the interface. */
export class BlockRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BlockRequestError';
  }
}

/** Throws unless [offset, offset+length) lies inside a node of `size` bytes. */
export function checkRange(node: { filename: string }, size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new BlockRequestError(`${node.filename}: invalid request offset ${offset} length ${length}`);
  }
  if (offset + length > size) {
    throw new BlockRequestError(
      `${node.filename}: request at offset ${offset} length ${length} is past the end of the image (${size} bytes)`,
    );
  }
}

/** Waits for every promise, then throws the first rejection (no request is left running, e.g. filling a buffer). */
export async function settleAll(ps: readonly Promise<void>[]): Promise<void> {
  if (ps.length <= 1) return ps[0];
  const results = await Promise.allSettled(ps);
  const bad = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (bad) throw bad.reason;
}

/** `node`'s readRuns where it has one; else one read() per range, all at once (settleAll). */
export function readRunsOf(node: Pick<BlockNode, 'read' | 'readRuns'>, runs: ReadonlyArray<{ offset: number; buf: Uint8Array }>): Promise<void> {
  if (node.readRuns) return node.readRuns(runs);
  return settleAll(runs.map((r) => node.read(r.offset, r.buf)));
}
