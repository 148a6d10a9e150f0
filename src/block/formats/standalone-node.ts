/**
 * The common part of image formats that live in one file with no backing file
 * and map the disk in fixed-size blocks (vdi, vpc): a subclass supplies its
 * driver name, size() and its own read, write, writeZeroes and blockStatus.
 *
 * Theory of operation. The node owns its file: filename, read-only state,
 * flush, allocated size and close are the file's. A backing node is refused.
 * discard is accepted and does nothing, and resize is refused, as in
 * qemu-img 7.2 for these formats. eachBlock() cuts a request into the pieces
 * that lie in one block each; serialised() runs block allocations one at a
 * time (a failed one does not block the next), while other requests run
 * concurrently.
 */
import { type BlockNode, checkRange } from '../node.js';
import type { ProtocolNode } from '../protocols/protocol.js';

export abstract class StandaloneImageNode {
  abstract readonly driver: string;
  readonly dirtyFlag = false;
  private allocation: Promise<void> = Promise.resolve();

  protected constructor(readonly file: ProtocolNode) {}

  abstract size(): number;

  // Accessors, so that a format with an optional backing file (vpc differencing disks) can override them.
  get backing(): BlockNode | null { return null; }
  get backingFilename(): string | null { return null; }
  get backingFormat(): string | null { return null; }
  get filename(): string { return this.file.filename; }
  get readOnly(): boolean { return this.file.readOnly; }

  attachBacking(node: BlockNode | null): void {
    if (node) throw new Error(`${this.filename}: ${this.driver} images cannot have a backing file`);
  }

  async discard(offset: number, length: number): Promise<void> {
    this.checkWritable();
    checkRange(this, this.size(), offset, length);
  }

  flush(): Promise<void> { return this.file.flush(); }

  async truncate(): Promise<void> {
    throw new Error('Image format driver does not support resize');
  }

  allocatedSize(): Promise<number> { return this.file.allocatedSize(); }
  close(): Promise<void> { return this.file.close(); }

  protected checkWritable(): void {
    if (this.readOnly) throw new Error(`${this.filename}: the image is opened read-only`);
  }

  /** Runs `fn` after every allocation queued before it has settled. */
  protected serialised(fn: () => Promise<void>): Promise<void> {
    const run = this.allocation.then(fn);
    this.allocation = run.catch(() => {});
    return run;
  }

  /** Calls fn, in order, for each piece of [offset, offset+length) that lies in one block of `blockSize` bytes. */
  protected async eachBlock(
    offset: number,
    length: number,
    blockSize: number,
    fn: (block: number, inBlock: number, at: number, n: number) => Promise<void>,
  ): Promise<void> {
    for (let at = 0; at < length;) {
      const pos = offset + at;
      const block = Math.floor(pos / blockSize);
      const inBlock = pos - block * blockSize;
      const n = Math.min(length - at, blockSize - inBlock);
      await fn(block, inBlock, at, n);
      at += n;
    }
  }
}
