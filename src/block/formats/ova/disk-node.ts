/**
 * A disk inside an OVA as a protocol node: a read-only window of `length` bytes
 * at `start` in the archive's own protocol node (a tar member's data), so any
 * format driver can open the disk where it lies, without extracting it.
 *
 * Reads and block status are the archive's, shifted by `start`; every change
 * (write, zeroing, discard, resize, growing writes) is refused with an error
 * naming the OVA (ReadOnlyProtocolNode), and flush has nothing to do. The node owns the archive node:
 * closing it closes the archive. Its host allocation is its length.
 */
import { type BlockExtent, checkRange } from '../../node.js';
import type { ProtocolNode } from '../../protocols/protocol.js';
import { ReadOnlyProtocolNode } from '../../protocols/read-only-node.js';

/** The refusal of every change to a disk inside an OVA. */
export function ovaReadOnly(name: string): string {
  return `${name}: disks inside an OVA are read-only (convert the disk out of the OVA to change it)`;
}

export class OvaDiskNode extends ReadOnlyProtocolNode implements ProtocolNode {
  readonly driver = 'ova';

  constructor(
    private readonly archive: ProtocolNode,
    private readonly start: number,
    private readonly length: number,
    /** The archive's name and the disk's number: "appliance.ova#2". */
    readonly filename: string,
  ) {
    super();
  }

  get granularity(): number { return this.archive.granularity; }
  get forceShare(): boolean { return this.archive.forceShare; }

  size(): number { return this.length; }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    checkRange(this, this.length, offset, buf.length);
    await this.archive.read(this.start + offset, buf);
  }

  async blockStatus(offset: number, length: number): Promise<BlockExtent> {
    checkRange(this, this.length, offset, length);
    const st = await this.archive.blockStatus(this.start + offset, length);
    return { ...st, offset, hostOffset: offset };
  }

  protected writeRefusal(): string {
    return ovaReadOnly(this.filename);
  }

  async allocatedSize(): Promise<number> { return this.length; }
  close(): Promise<void> { return this.archive.close(); }
}
