/**
 * The `raw` format: the virtual disk is the file, byte for byte. It adds nothing
 * to the protocol node below it but the ImageNode surface, and creates images by
 * sizing a file (sparse, or preallocated with falloc/full). Reads, including the
 * synchronous cached read (readCachedSync), go straight to the protocol node.
 */
import { type BlockExtent, type BlockNode, type TruncateOptions, type WriteOptions, type ZeroOptions, type Preallocation, readRunsOf } from '../node.js';
import { openProtocol } from '../protocols/index.js';
import type { ProtocolNode } from '../protocols/protocol.js';
import type { CreateOptionSpec, CreateRequest, FormatDriver, ImageNode, OpenContext } from './format.js';

export class RawNode implements ImageNode {
  readonly driver = 'raw';
  readonly backing = null;
  readonly backingFilename = null;
  readonly backingFormat = null;

  constructor(readonly file: ProtocolNode) {}

  get filename(): string { return this.file.filename; }
  get readOnly(): boolean { return this.file.readOnly; }
  get granularity(): number { return this.file.granularity; }

  attachBacking(node: BlockNode | null): void {
    if (node) throw new Error(`${this.filename}: raw images cannot have a backing file`);
  }

  size(): number { return this.file.size(); }
  read(offset: number, buf: Uint8Array): Promise<void> { return this.file.read(offset, buf); }
  // Protocols without a synchronous read (http, nbd) decline it.
  readCachedSync(offset: number, parts: readonly Uint8Array[], length: number): boolean {
    return this.file.readCachedSync?.(offset, parts, length) ?? false;
  }
  // Protocols without readRuns (http, nbd) get one read per range.
  readRuns(runs: ReadonlyArray<{ offset: number; buf: Uint8Array }>): Promise<void> { return readRunsOf(this.file, runs); }
  write(offset: number, buf: Uint8Array, opts?: WriteOptions): Promise<void> { return this.file.write(offset, buf, opts); }
  writeZeroes(offset: number, length: number, opts?: ZeroOptions): Promise<void> {
    return this.file.writeZeroes(offset, length, opts);
  }
  discard(offset: number, length: number): Promise<void> { return this.file.discard(offset, length); }
  flush(): Promise<void> { return this.file.flush(); }
  async blockStatus(offset: number, length: number): Promise<BlockExtent> {
    const st = await this.file.blockStatus(offset, length);
    return { ...st, allocated: true, hostOffset: offset };
  }
  truncate(size: number, opts?: TruncateOptions): Promise<void> { return this.file.truncate(size, opts); }
  allocatedSize(): Promise<number> { return this.file.allocatedSize(); }
  close(): Promise<void> { return this.file.close(); }
}

const RAW_OPTIONS: readonly CreateOptionSpec[] = [{ name: 'size', type: 'size', help: 'Virtual disk size' }];

const RAW_PREALLOCATION: readonly Preallocation[] = ['off', 'falloc', 'full'];

export const rawFormat: FormatDriver = {
  name: 'raw',
  probe: () => 1,
  async open(file: ProtocolNode, _ctx: OpenContext): Promise<ImageNode> {
    return new RawNode(file);
  },
  async create(req: CreateRequest): Promise<void> {
    for (const key of req.options.keys()) {
      if (!RAW_OPTIONS.some((o) => o.name === key)) throw new Error(`Invalid parameter '${key}'`);
    }
    // raw has no metadata: preallocation is the file protocol's, with its messages.
    const prealloc = req.protocolPreallocation ?? req.preallocation ?? 'off';
    if (prealloc === 'metadata') throw new Error('Unsupported preallocation mode: metadata');
    if (!RAW_PREALLOCATION.includes(prealloc as Preallocation)) {
      throw new Error(`invalid parameter value: ${prealloc}`);
    }
    const file = await openProtocol(req.filename, { create: true });
    try {
      await file.truncate(req.size, { preallocation: prealloc as Preallocation });
    } finally {
      await file.close();
    }
  },
  createOptions: RAW_OPTIONS,
};
