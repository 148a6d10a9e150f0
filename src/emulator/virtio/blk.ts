/**
 * virtio-blk (device ID 2) on a block-layer node: any format, protocol and
 * backing chain openImage() opens.
 *
 * Theory of operation. One request queue (256 entries). A request's readable
 * stream starts with a 16-byte header (type, reserved, sector), its writable
 * stream ends with the status byte; data lies between, framed any way the
 * driver likes. Types: IN (read into the writable data), OUT (write the
 * readable data), FLUSH, GET_ID (the serial, 20 bytes, NUL-padded), DISCARD
 * and WRITE_ZEROES (16-byte segments: sector, sector count, flags with
 * UNMAP). Many requests are in flight at once and complete in the order the
 * block layer finishes them; an IN with more data than seg_max buffers of
 * size_max can hold is IOERR (no host buffer of the guest's choosing). A FLUSH
 * first waits for every write, discard and zeroing submitted before it, then
 * flushes the node. IN first asks the node for a synchronous read
 * (BlockNode.readCachedSync) straight into the guest's buffers: when every byte
 * can be read at once (page-cache hits, cached qcow2 metadata, no metadata
 * change running) the request completes inside handle(), with no host buffer,
 * copy or promise; a reset cannot come between, as nothing else runs on this
 * thread until handle() returns. Otherwise the data lands in a host buffer and
 * is copied to the guest, over whatever a partial synchronous read left, only
 * if the device was not reset meanwhile (a reset cannot wait for the host I/O;
 * a failed or reset request may leave some of the range's own bytes in the
 * guest's buffers). The host buffers are reused (spare-buffers.ts), except one
 * whose read failed.
 *
 * Cache modes: with a write cache (writeback, none, unsafe) the guest flushes
 * when it needs to; without one (writethrough, directsync; or the guest
 * clearing the writeback field, VIRTIO_BLK_F_CONFIG_WCE) every write is
 * flushed before it completes. cache=unsafe is the node's business (opened
 * with noFlush: flushes return at once). discard=ignore completes DISCARD
 * without touching the image, discard=unmap passes it on, and lets
 * WRITE_ZEROES with UNMAP deallocate.
 *
 * Statuses: OK; IOERR for a range past the end, a length that is not whole
 * sectors, writes to a read-only drive, and block-layer errors (logged on
 * stderr); UNSUPP for unknown types and a DISCARD with the UNMAP flag. A
 * request without a header or a status byte is a guest fault (needs-reset).
 */
import type { BlockNode } from '../../block/node.js';
import { readableBytes, writableBeforeLastByte, writeLastByte, writeToChain } from './chain-io.js';
import { SpareBuffers } from './spare-buffers.js';
import type { VirtioDevice, VirtioHost } from './device.js';
import { DEVICE_ID, featureBits, hasFeature } from './spec.js';
import { VirtioFault, type DescriptorChain } from './virtqueue.js';

const F_SIZE_MAX = 1;
const F_SEG_MAX = 2;
const F_RO = 5;
const F_BLK_SIZE = 6;
const F_FLUSH = 9;
const F_CONFIG_WCE = 11;
const F_DISCARD = 13;
const F_WRITE_ZEROES = 14;

const T_IN = 0;
const T_OUT = 1;
const T_FLUSH = 4;
const T_GET_ID = 8;
const T_DISCARD = 11;
const T_WRITE_ZEROES = 13;

const S_OK = 0;
const S_IOERR = 1;
const S_UNSUPP = 2;

const SECTOR = 512;
const HEADER_BYTES = 16;
const SEGMENT_BYTES = 16;
const SEGMENT_F_UNMAP = 1;
const ID_BYTES = 20;
const QUEUE_SIZE = 256;
/** The largest buffer one descriptor may hold (size_max) and the largest discard or zeroing (in sectors). */
const SIZE_MAX = 1 << 20;
const MAX_RANGE_SECTORS = 0x3f_ffff;
const MAX_RANGE_SEGMENTS = 32;

/** The most data one request may carry as advertised (seg_max buffers of size_max): more is IOERR, not a host allocation. */
const MAX_REQUEST_BYTES = SIZE_MAX * (QUEUE_SIZE - 2);

const CONFIG_BYTES = 60;
const CONFIG_WRITEBACK = 32;

/** The little-endian 32-bit word at `at` of `bytes`. */
const le32 = (bytes: Uint8Array, at: number): number =>
  (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;

export interface VirtioBlkOptions {
  node: BlockNode;
  /** The drive's name for log lines (its id=). */
  id: string;
  readOnly: boolean;
  /** The guest sees a volatile write cache (cache=writeback, none, unsafe) rather than write-through. */
  writeCache: boolean;
  discard: 'ignore' | 'unmap';
  /** What GET_ID returns (at most 20 bytes are used). */
  serial?: string;
  log?: (line: string) => void;
}

interface Outcome {
  status: number;
  /** Data bytes written to the guest before the status byte. */
  data?: Uint8Array;
  /** Data bytes already in the guest's buffers (a synchronous read), when there is no `data`. */
  written?: number;
}

export class VirtioBlk implements VirtioDevice {
  readonly name = 'virtio-blk';
  readonly deviceId = DEVICE_ID.BLOCK;
  readonly features: bigint;
  readonly queueSizes = [QUEUE_SIZE];
  private readonly configBytes = new Uint8Array(CONFIG_BYTES);
  private readonly log: (line: string) => void;
  private host: VirtioHost | null = null;
  /** Changes at each reset: completions of older requests are dropped. */
  private epoch = 0;
  /** Writes, discards and zeroings not yet finished, which a flush waits for. */
  private readonly writes = new Set<Promise<unknown>>();
  private readonly spares = new SpareBuffers();

  constructor(private readonly options: VirtioBlkOptions) {
    const { readOnly } = options;
    this.features = featureBits(
      F_SIZE_MAX, F_SEG_MAX, F_BLK_SIZE, F_FLUSH, F_CONFIG_WCE,
      ...(readOnly ? [F_RO] : [F_DISCARD, F_WRITE_ZEROES]),
    );
    this.log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
    const c = new DataView(this.configBytes.buffer);
    const sectors = Math.floor(options.node.size() / SECTOR);
    c.setUint32(0, sectors % 0x1_0000_0000, true);
    c.setUint32(4, Math.floor(sectors / 0x1_0000_0000), true);
    c.setUint32(8, SIZE_MAX, true);
    c.setUint32(12, QUEUE_SIZE - 2, true);
    c.setUint32(20, SECTOR, true);
    c.setUint8(CONFIG_WRITEBACK, options.writeCache ? 1 : 0);
    c.setUint32(36, MAX_RANGE_SECTORS, true);
    c.setUint32(40, MAX_RANGE_SEGMENTS, true);
    c.setUint32(44, Math.max(1, options.node.granularity / SECTOR), true);
    c.setUint32(48, MAX_RANGE_SECTORS, true);
    c.setUint32(52, MAX_RANGE_SEGMENTS, true);
    c.setUint8(56, options.discard === 'unmap' ? 1 : 0);
  }

  config(): Uint8Array {
    return this.configBytes;
  }

  writeConfig(offset: number, bytes: Uint8Array): void {
    if (offset === CONFIG_WRITEBACK && this.host && hasFeature(this.host.features, F_CONFIG_WCE)) {
      this.configBytes[CONFIG_WRITEBACK] = bytes[0]! & 1;
    }
  }

  start(host: VirtioHost): void {
    this.host = host;
  }

  reset(): void {
    this.host = null;
    this.epoch++;
    this.configBytes[CONFIG_WRITEBACK] = this.options.writeCache ? 1 : 0;
  }

  handle(_queue: number, chain: DescriptorChain): void {
    if (chain.readableBytes < HEADER_BYTES || chain.writableBytes < 1) {
      throw new VirtioFault(`request ${chain.head} has no ${chain.readableBytes < HEADER_BYTES ? 'header' : 'status byte'}`);
    }
    const first = chain.readable[0]!;
    const header = first.length >= HEADER_BYTES ? first : readableBytes(chain, 0, HEADER_BYTES);
    const type = le32(header, 0);
    const sector = le32(header, 8) + le32(header, 12) * 0x1_0000_0000;
    const host = this.host;
    const epoch = this.epoch;
    const finish = (outcome: Outcome): void => {
      if (epoch === this.epoch && host) this.complete(host, chain, outcome);
    };
    if (type === T_IN) this.read(sector, chain, finish);
    else this.serve(type, sector, chain).then(finish, (e: Error) => host?.fault(e.message));
  }

  /** Writes the outcome's data and status byte into the chain and hands it back. */
  private complete(host: VirtioHost, chain: DescriptorChain, outcome: Outcome): void {
    try {
      const data = outcome.data;
      if (data) writeToChain(chain, 0, data);
      writeLastByte(chain, outcome.status);
      host.complete(chain, (data?.length ?? outcome.written ?? 0) + 1);
    } catch (e) {
      host.fault((e as Error).message);
    }
  }

  /**
   * IN, the hot path, with no promise of its own: read at once into the guest's
   * buffers when the node can, else the data lands in a spare host buffer (see
   * the header), which goes back to the spares once the guest has it (or the
   * device was reset).
   */
  private read(sector: number, chain: DescriptorChain, finish: (outcome: Outcome) => void): void {
    const bytes = chain.writableBytes - 1;
    if (bytes > MAX_REQUEST_BYTES || !this.inRange(sector, bytes)) {
      finish({ status: S_IOERR });
      return;
    }
    const node = this.options.node;
    if (this.host && node.readCachedSync?.(sector * SECTOR, writableBeforeLastByte(chain), bytes)) {
      finish({ status: S_OK, written: bytes });
      return;
    }
    let data: Uint8Array = new Uint8Array(0);
    let reading: Promise<void>;
    try {
      data = this.spares.take(bytes);
      reading = node.read(sector * SECTOR, data);
    } catch (e) {
      reading = Promise.reject(e as Error);
    }
    reading.then(
      () => {
        finish({ status: S_OK, data });
        this.spares.give(data);
      },
      (e: Error) => {
        // Not back to the spares: other parts of a failed read may still be landing in it.
        this.failed('read', sector, e);
        finish({ status: S_IOERR });
      },
    );
  }

  /** Every type but IN. */
  private async serve(type: number, sector: number, chain: DescriptorChain): Promise<Outcome> {
    const inBytes = chain.writableBytes - 1;
    const outBytes = chain.readableBytes - HEADER_BYTES;
    switch (type) {
      case T_OUT:
        if (this.options.readOnly || !this.inRange(sector, outBytes)) return { status: S_IOERR };
        return this.tracked('write', sector, () => this.options.node.write(sector * SECTOR, readableBytes(chain, HEADER_BYTES, outBytes)));
      case T_FLUSH:
        return this.guard('flush', sector, async () => {
          await Promise.allSettled([...this.writes]);
          await this.options.node.flush();
          return { status: S_OK };
        });
      case T_GET_ID: {
        const id = new Uint8Array(ID_BYTES);
        id.set(new TextEncoder().encode(this.options.serial ?? '').subarray(0, ID_BYTES));
        return { status: S_OK, data: id.subarray(0, Math.min(ID_BYTES, inBytes)) };
      }
      case T_DISCARD:
      case T_WRITE_ZEROES:
        return this.ranges(type, sector, chain, outBytes);
      default:
        return { status: S_UNSUPP };
    }
  }

  /** DISCARD and WRITE_ZEROES: their 16-byte segments, each checked before any is applied. */
  private async ranges(type: number, sector: number, chain: DescriptorChain, bytes: number): Promise<Outcome> {
    if (this.options.readOnly) return { status: S_IOERR };
    if (bytes === 0 || bytes % SEGMENT_BYTES !== 0 || bytes / SEGMENT_BYTES > MAX_RANGE_SEGMENTS) return { status: S_UNSUPP };
    const raw = readableBytes(chain, HEADER_BYTES, bytes).slice();
    const view = new DataView(raw.buffer);
    const segments: { sector: number; count: number; unmap: boolean }[] = [];
    for (let at = 0; at < bytes; at += SEGMENT_BYTES) {
      const start = view.getUint32(at, true) + view.getUint32(at + 4, true) * 0x1_0000_0000;
      const count = view.getUint32(at + 8, true);
      const flags = view.getUint32(at + 12, true);
      if ((flags & ~SEGMENT_F_UNMAP) !== 0 || (type === T_DISCARD && flags !== 0)) return { status: S_UNSUPP };
      if (count > MAX_RANGE_SECTORS || !this.inRange(start, count * SECTOR)) return { status: S_IOERR };
      segments.push({ sector: start, count, unmap: (flags & SEGMENT_F_UNMAP) !== 0 });
    }
    const node = this.options.node;
    const unmapping = this.options.discard === 'unmap';
    if (type === T_DISCARD && !unmapping) return { status: S_OK };
    const what = type === T_DISCARD ? 'discard' : 'write-zeroes';
    return this.tracked(what, sector, async () => {
      for (const s of segments) {
        if (type === T_DISCARD) await node.discard(s.sector * SECTOR, s.count * SECTOR);
        else await node.writeZeroes(s.sector * SECTOR, s.count * SECTOR, { mayUnmap: s.unmap && unmapping });
      }
    });
  }

  /** A change to the image: flushes wait for it; without a write cache it is flushed before it completes. */
  private tracked(what: string, sector: number, change: () => Promise<void>): Promise<Outcome> {
    const done = this.guard(what, sector, async () => {
      await change();
      if (this.configBytes[CONFIG_WRITEBACK] === 0) await this.options.node.flush();
      return { status: S_OK };
    });
    this.writes.add(done);
    void done.finally(() => this.writes.delete(done));
    return done;
  }

  /** Runs block-layer work; its errors become IOERR and a log line. */
  private async guard(what: string, sector: number, work: () => Promise<Outcome>): Promise<Outcome> {
    try {
      return await work();
    } catch (e) {
      this.failed(what, sector, e as Error);
      return { status: S_IOERR };
    }
  }

  private failed(what: string, sector: number, e: Error): void {
    this.log(`tsemu: virtio-blk ${this.options.id}: ${what} at sector ${sector} failed: ${e.message}`);
  }

  private inRange(sector: number, bytes: number): boolean {
    return bytes % SECTOR === 0 && sector * SECTOR + bytes <= this.options.node.size();
  }
}
