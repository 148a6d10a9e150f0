/**
 * What a protocol node is: the bottom of an image's node tree, the bytes a format
 * driver parses (a host file, an HTTP resource, an NBD export). Format drivers
 * see only this interface, so every format works on every protocol. Protocols are
 * chosen from the file name: a name with a URL scheme a protocol driver claims
 * (`https://…`, `nbd://…`) goes to that driver, every other name is a host file
 * (protocols/index.ts holds the table).
 *
 * Growing writes (writeGrow, writevGrow) are how formats append metadata and data
 * past the current end; a protocol of fixed size refuses them with an error that
 * names the protocol. lockForFormat() takes QEMU's image locks for a format with
 * metadata; protocols without locks treat it as a no-op.
 */
import type { BlockNode } from '../node.js';
import type { JsonOptionValue } from '../json-options.js';

export interface ProtocolOpenOptions {
  readOnly?: boolean;
  /** Create the image (for a host file: truncated to zero length) if the protocol can. */
  create?: boolean;
  /** -U/--force-share: open read-only without taking write locks or checking others'. */
  forceShare?: boolean;
  /** cache=unsafe (QEMU's cache.no-flush): flush() returns at once. */
  noFlush?: boolean;
  /**
   * Reads the host's page cache can serve at once are done on the calling thread
   * (host files; other protocols ignore it), a memory copy with no hand-off to an
   * I/O thread. 'pool-busy': only while the I/O threads are all busy, for callers
   * whose thread has time to spare, so that the I/O threads are left to the writes
   * (convert). 'always': for callers that wait for each read (a guest's disk with one
   * request in flight), where the hand-off's latency is most of a cached read.
   */
  inlineCachedReads?: InlineCachedReads;
}

/** When a host file's cached bytes are read on the calling thread (ProtocolOpenOptions.inlineCachedReads). */
export type InlineCachedReads = 'pool-busy' | 'always';

export interface ProtocolNode extends BlockNode {
  readonly forceShare: boolean;
  /** Takes the image locks QEMU takes for a format that keeps metadata in this node. */
  lockForFormat(hasMetadata: boolean): void;
  /** Writes `buf` at `offset`, growing the node if the write ends past its end. */
  writeGrow(offset: number, buf: Uint8Array): Promise<void>;
  /** Writes `parts` back to back from `offset`, growing the node as writeGrow does. */
  writevGrow(offset: number, parts: readonly Uint8Array[]): Promise<void>;
}

export interface ProtocolDriver {
  /** The driver name qemu-img prints ("file", "https", "nbd", …). */
  readonly name: string;
  /** Whether `filename` names a resource of this protocol (by its URL scheme). */
  claims(filename: string): boolean;
  open(filename: string, opts: ProtocolOpenOptions): Promise<ProtocolNode>;
  /**
   * How qemu-img names an image on `filename`: a plain name, or the options a plain
   * name cannot carry, keys in the order qemu-img prints them (json-filename.ts).
   */
  displayName?(filename: string): string | Record<string, JsonOptionValue>;
  /** QEMU's driver for this protocol answers no image info: a raw image on it has no dirty flag. */
  readonly withoutImageInfo?: boolean;
}
