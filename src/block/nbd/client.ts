/**
 * The `nbd` protocol's node (client-driver.ts is its protocol table entry): a
 * ProtocolNode over an export of an NBD server, claimed by QEMU's URIs
 * (nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?socket=PATH)
 * and `json:{"driver":"nbd","server.host":…}` names (target.ts), so every format
 * driver and every `img` operation works on an export. qemu-img shows an export
 * by its canonical URI.
 *
 * The node is the export, of fixed size. Reads and writes larger than the server's
 * maximum payload are cut and sent in parallel; FUA, flush, trim and write-zeroes
 * go to the server when it advertises them (else: write+flush, no-op flush and
 * trim, zeroes written as data). blockStatus asks base:allocation (when the server
 * gave it) about everything from the offset on and keeps the descriptors of the
 * answer, so a walk (map, convert's parallel workers) asks once per reply, and
 * callers that miss while a query is in flight wait for it instead of asking too;
 * a change to the export drops them. Without the context everything is data.
 * A read-only export opened for writing is refused, as QEMU refuses it
 * ("Permission denied").
 *
 * "Creating" an image on NBD (img create / convert without -n) opens the existing
 * export instead, as QEMU's fallback for protocols that cannot create does:
 * truncate() then accepts any size up to the export's ("Cannot grow NBD nodes"
 * beyond) and zeroes the first sector so no old header is probed.
 */
import type { BlockExtent, TruncateOptions, WriteOptions, ZeroOptions } from '../node.js';
import { checkRange } from '../node.js';
import type { ProtocolNode, ProtocolOpenOptions } from '../protocols/protocol.js';
import { type BlockDescriptor, NbdConnection } from './client-connection.js';
import { parseNbdTarget } from './target.js';
import {
  CMD_BLOCK_STATUS,
  CMD_FLAG_FUA,
  CMD_FLAG_NO_HOLE,
  CMD_FLUSH,
  CMD_READ,
  CMD_TRIM,
  CMD_WRITE,
  CMD_WRITE_ZEROES,
  STATE_HOLE,
  STATE_ZERO,
  TF_READ_ONLY,
  TF_SEND_FLUSH,
  TF_SEND_FUA,
  TF_SEND_TRIM,
  TF_SEND_WRITE_ZEROES,
} from './protocol.js';

/** Largest range one BLOCK_STATUS, TRIM or WRITE_ZEROES asks about (fits the 32-bit length). */
const MAX_RANGE_REQUEST = 2 ** 31;
const SECTOR = 512;

export class NbdNode implements ProtocolNode {
  readonly driver = 'nbd';
  readonly file = null;
  readonly backing = null;
  readonly granularity: number;
  /** Descriptors of the last BLOCK_STATUS answer, starting at statusOffset. */
  private status: BlockDescriptor[] = [];
  private statusOffset = 0;
  /** Bumped by every change to the export: an answer to an older query is not cached. */
  private generation = 0;
  /** The BLOCK_STATUS query in flight, which concurrent callers wait for before asking their own. */
  private statusQuery: Promise<void> | null = null;

  private constructor(
    readonly filename: string,
    private readonly conn: NbdConnection,
    readonly readOnly: boolean,
    readonly forceShare: boolean,
    private readonly noFlush: boolean,
    private readonly creating: boolean,
  ) {
    this.granularity = Math.max(SECTOR, conn.info.preferredBlock);
  }

  static async open(filename: string, opts: ProtocolOpenOptions): Promise<NbdNode> {
    const uri = parseNbdTarget(filename);
    const conn = await NbdConnection.connect(uri.address, uri.exportName);
    const readOnly = opts.readOnly ?? false;
    if (!readOnly && conn.info.flags & TF_READ_ONLY) {
      await conn.close();
      throw new Error('Could not open image: Permission denied');
    }
    return new NbdNode(filename, conn, readOnly, opts.forceShare ?? false, opts.noFlush ?? false, opts.create ?? false);
  }

  private get flags(): number {
    return this.conn.info.flags;
  }

  lockForFormat(): void {}

  size(): number {
    return this.conn.info.size;
  }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    checkRange(this, this.size(), offset, buf.length);
    await this.split(offset, buf.length, this.conn.info.maxPayload, (at, len) =>
      this.run(`read at offset ${at}`, CMD_READ, 0, at, len, { buf: buf.subarray(at - offset, at - offset + len) }),
    );
  }

  async write(offset: number, buf: Uint8Array, opts?: WriteOptions): Promise<void> {
    this.checkWritable();
    checkRange(this, this.size(), offset, buf.length);
    this.forgetStatus();
    const fua = opts?.fua && this.flags & TF_SEND_FUA ? CMD_FLAG_FUA : 0;
    await this.split(offset, buf.length, this.conn.info.maxPayload, (at, len) =>
      this.run(`write at offset ${at}`, CMD_WRITE, fua, at, len, { payload: buf.subarray(at - offset, at - offset + len) }),
    );
    if (opts?.fua && !fua) await this.flush();
  }

  async writeGrow(offset: number, buf: Uint8Array): Promise<void> {
    if (offset + buf.length > this.size()) throw new Error(`${this.filename}: Cannot grow NBD nodes`);
    await this.write(offset, buf);
  }

  async writevGrow(offset: number, parts: readonly Uint8Array[]): Promise<void> {
    const writes: Promise<void>[] = [];
    let at = offset;
    for (const p of parts) {
      writes.push(this.writeGrow(at, p));
      at += p.length;
    }
    await Promise.all(writes);
  }

  async writeZeroes(offset: number, length: number, opts?: ZeroOptions): Promise<void> {
    this.checkWritable();
    checkRange(this, this.size(), offset, length);
    this.forgetStatus();
    if (!(this.flags & TF_SEND_WRITE_ZEROES)) {
      const zeroes = new Uint8Array(Math.min(length, this.conn.info.maxPayload));
      await this.split(offset, length, zeroes.length, (at, len) => this.write(at, zeroes.subarray(0, len)));
      return;
    }
    const flags = opts?.mayUnmap ? 0 : CMD_FLAG_NO_HOLE;
    await this.split(offset, length, MAX_RANGE_REQUEST, (at, len) =>
      this.run(`write zeroes at offset ${at}`, CMD_WRITE_ZEROES, flags, at, len),
    );
  }

  async discard(offset: number, length: number): Promise<void> {
    this.checkWritable();
    checkRange(this, this.size(), offset, length);
    if (!(this.flags & TF_SEND_TRIM)) return;
    this.forgetStatus();
    await this.split(offset, length, MAX_RANGE_REQUEST, (at, len) => this.run(`trim at offset ${at}`, CMD_TRIM, 0, at, len));
  }

  async flush(): Promise<void> {
    if (this.readOnly || this.noFlush || !(this.flags & TF_SEND_FLUSH)) return;
    await this.run('flush', CMD_FLUSH, 0, 0, 0);
  }

  async blockStatus(offset: number, length: number): Promise<BlockExtent> {
    checkRange(this, this.size(), offset, length);
    const extent = (len: number, flags: number): BlockExtent => ({
      offset,
      length: Math.min(len, length),
      allocated: true,
      data: !(flags & STATE_HOLE),
      zero: (flags & STATE_ZERO) !== 0,
      compressed: false,
      hostOffset: offset,
    });
    if (this.conn.info.baseAllocationId === null || length === 0) return extent(length, 0);
    let found = this.cachedStatus(offset);
    if (!found && this.statusQuery) {
      await this.statusQuery;
      found = this.cachedStatus(offset);
    }
    if (!found) {
      const query = this.queryStatus(offset);
      const shared = query.then(() => {}, () => {});
      this.statusQuery = shared;
      try {
        found = await query;
      } finally {
        if (this.statusQuery === shared) this.statusQuery = null;
      }
    }
    return extent(found.length, found.flags);
  }

  /**
   * Asks base:allocation about everything from `offset` on (up to MAX_RANGE_REQUEST):
   * the answer's further descriptors serve the calls that walk on from there.
   */
  private async queryStatus(offset: number): Promise<BlockDescriptor> {
    const generation = this.generation;
    const ask = Math.min(this.size() - offset, MAX_RANGE_REQUEST);
    const descriptors = await this.conn.request(CMD_BLOCK_STATUS, 0, offset, ask).catch((e: Error) => {
      throw new Error(`${this.filename}: block status at offset ${offset} failed: ${e.message}`);
    });
    const first = descriptors[0]!;
    if (first.length === 0) throw new Error(`${this.filename}: the server sent a block status descriptor of length 0`);
    if (generation === this.generation) {
      this.status = descriptors;
      this.statusOffset = offset;
    }
    return first;
  }

  private forgetStatus(): void {
    this.status = [];
    this.generation++;
  }

  /** The cached descriptor that `offset` falls in, trimmed to start there. */
  private cachedStatus(offset: number): BlockDescriptor | null {
    let at = this.statusOffset;
    for (const d of this.status) {
      if (offset >= at && offset < at + d.length) return { length: at + d.length - offset, flags: d.flags };
      at += d.length;
    }
    return null;
  }

  async truncate(size: number, _opts?: TruncateOptions): Promise<void> {
    if (size > this.size()) throw new Error('Cannot grow NBD nodes');
    if (size !== this.size() && !this.creating) throw new Error('Cannot resize NBD nodes');
    if (this.creating && size > 0) await this.writeZeroes(0, Math.min(SECTOR, this.size()));
  }

  async allocatedSize(): Promise<number> {
    return -1;
  }

  close(): Promise<void> {
    return this.conn.close();
  }

  private checkWritable(): void {
    if (this.readOnly) throw new Error(`${this.filename}: the image is opened read-only`);
  }

  private async run(
    what: string,
    type: number,
    flags: number,
    offset: number,
    length: number,
    opts?: { payload?: Uint8Array; buf?: Uint8Array },
  ): Promise<void> {
    try {
      await this.conn.request(type, flags, offset, length, opts);
    } catch (e) {
      throw new Error(`${this.filename}: ${what} failed: ${(e as Error).message}`);
    }
  }

  /** Runs `op` on [offset, offset+length) cut into pieces of at most `max` bytes, in parallel. */
  private async split(offset: number, length: number, max: number, op: (at: number, len: number) => Promise<void>): Promise<void> {
    const parts: Promise<void>[] = [];
    for (let at = offset; at < offset + length; at += max) parts.push(op(at, Math.min(max, offset + length - at)));
    await Promise.all(parts);
  }
}
