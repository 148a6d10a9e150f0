/**
 * One client connection in the transmission phase: requests go out tagged with a
 * handle, and one reader loop matches replies (simple, or structured chunks) back
 * to them, so many requests can be in flight at once.
 *
 * A READ's data lands in the caller's buffer: from a simple reply, or from
 * offset-data chunks (copied in place) and offset-hole chunks (zero-filled); a
 * successful structured read must cover every byte asked for. BLOCK_STATUS
 * collects the descriptors of the negotiated context. Error replies (a simple
 * reply's error, error chunks with their message) reject that request with
 * NbdCommandError and leave the connection up.
 *
 * A reply that breaks the protocol (bad magic, an unknown handle, a chunk outside
 * its request, a non-error chunk type it cannot parse), or the server going away,
 * ends the connection: every pending request and every later one rejects with the
 * reason. close() waits for requests in flight, sends DISC and closes the socket.
 */
import net from 'node:net';
import { NbdClosedError, SocketReader, onreadInto } from './reader.js';
import { type ExportInfo, clientHandshake } from './client-handshake.js';
import { describeAddress } from './uri.js';
import {
  CHUNK_HEADER_SIZE,
  CMD_BLOCK_STATUS,
  CMD_DISC,
  CMD_READ,
  MAX_STRING,
  NbdProtocolError,
  REPLY_FLAG_DONE,
  REPLY_TYPE_BLOCK_STATUS,
  REPLY_TYPE_ERROR_BIT,
  REPLY_TYPE_NONE,
  REPLY_TYPE_OFFSET_DATA,
  REPLY_TYPE_OFFSET_HOLE,
  SIMPLE_REPLY_MAGIC,
  SIMPLE_REPLY_SIZE,
  STRUCTURED_REPLY_MAGIC,
  encodeRequest,
  getU64,
  nbdErrorText,
  socketErrorText,
  view,
} from './protocol.js';

/** Where to connect: a TCP host and port, or a Unix socket path. */
export type NbdAddress = { host: string; port: number } | { path: string };

export interface BlockDescriptor {
  length: number;
  flags: number;
}

/** A request the server answered with an error. */
export class NbdCommandError extends Error {
  constructor(readonly code: number, readonly serverMessage: string) {
    super(`${nbdErrorText(code)}${serverMessage ? ` (server: ${serverMessage})` : ''}`);
    this.name = 'NbdCommandError';
  }
}

interface Pending {
  type: number;
  offset: number;
  length: number;
  /** READ: where the data goes; bytes covered so far by structured chunks, and their ranges in the buffer (start, end pairs). */
  buf: Uint8Array | null;
  covered: number;
  chunks: number[];
  descriptors: BlockDescriptor[];
  error: NbdCommandError | null;
  resolve: (descriptors: BlockDescriptor[]) => void;
  reject: (e: Error) => void;
}

const MAX_STATUS_PAYLOAD = 1 << 20;
/** An error chunk: error, message length, a message of at most 64 KiB, and an offset. */
const MAX_ERROR_PAYLOAD = 6 + 0xffff + 8;

export class NbdConnection {
  private readonly pending = new Map<number, Pending>();
  private nextHandle = 1;
  private dead: Error | null = null;
  private readonly idle: (() => void)[] = [];

  private constructor(
    private readonly socket: net.Socket,
    private readonly reader: SocketReader,
    readonly info: ExportInfo,
  ) {
    void this.readReplies();
  }

  static async connect(address: NbdAddress, exportName: string): Promise<NbdConnection> {
    let reader: SocketReader | null = null;
    const onread = onreadInto(() => reader!);
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect('path' in address ? { path: address.path, onread } : { ...address, onread });
      s.once('connect', () => {
        reader = new SocketReader(s, true);
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', (e: NodeJS.ErrnoException) => {
        reject(new Error(`Failed to connect to '${describeAddress(address)}': ${socketErrorText(e)}`));
      });
    });
    socket.setNoDelay(true);
    socket.on('error', () => {});
    try {
      const info = await clientHandshake(socket, reader!, exportName);
      return new NbdConnection(socket, reader!, info);
    } catch (e) {
      socket.destroy();
      if (e instanceof NbdClosedError) throw new Error(`the server closed the connection during negotiation (${e.message})`);
      throw e;
    }
  }

  /**
   * Sends one request and resolves when its reply is complete: READ fills `buf`
   * (its length is the request length), BLOCK_STATUS resolves with the descriptors.
   */
  request(
    type: number,
    flags: number,
    offset: number,
    length: number,
    opts: { payload?: Uint8Array; buf?: Uint8Array } = {},
  ): Promise<BlockDescriptor[]> {
    if (this.dead) return Promise.reject(this.dead);
    const handle = this.nextHandle++;
    return new Promise((resolve, reject) => {
      this.pending.set(handle, {
        type, offset, length, buf: opts.buf ?? null, covered: 0, chunks: [], descriptors: [], error: null, resolve, reject,
      });
      this.socket.cork();
      this.socket.write(encodeRequest(type, flags, handle, offset, length));
      if (opts.payload) this.socket.write(opts.payload);
      this.socket.uncork();
    });
  }

  /** Waits for requests in flight, sends DISC and closes the connection. */
  async close(): Promise<void> {
    while (this.pending.size > 0 && !this.dead) await new Promise<void>((resolve) => this.idle.push(resolve));
    if (!this.dead) {
      this.dead = new Error('the NBD connection is closed');
      this.socket.write(encodeRequest(CMD_DISC, 0, 0, 0, 0));
    }
    await new Promise<void>((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.once('close', () => resolve());
      this.socket.end();
    });
  }

  private async readReplies(): Promise<void> {
    try {
      for (;;) {
        const magicBytes = await this.reader.read(4);
        const magic = view(magicBytes).getUint32(0);
        if (magic === SIMPLE_REPLY_MAGIC) await this.simpleReply();
        else if (magic === STRUCTURED_REPLY_MAGIC) await this.chunk();
        else throw new NbdProtocolError(`bad reply magic 0x${magic.toString(16)}`);
      }
    } catch (e) {
      const closedByUs = this.dead !== null;
      this.dead ??= e instanceof NbdClosedError
        ? new Error(`the NBD server closed the connection (${e.message})`)
        : new Error(`NBD protocol error: ${(e as Error).message}`);
      for (const p of this.pending.values()) p.reject(this.dead);
      this.pending.clear();
      this.wakeIdle();
      if (!closedByUs) this.socket.destroy();
    }
  }

  private take(handle: number): Pending {
    const p = this.pending.get(handle);
    if (!p) throw new NbdProtocolError(`reply for unknown handle ${handle}`);
    return p;
  }

  private async simpleReply(): Promise<void> {
    const v = view(await this.reader.read(SIMPLE_REPLY_SIZE - 4));
    const error = v.getUint32(0);
    const handle = getU64(v, 4);
    const p = this.take(handle);
    if (error === 0 && p.type === CMD_READ) await this.reader.readInto(p.buf!);
    this.finish(handle, p, error === 0 ? null : new NbdCommandError(error, ''));
  }

  private async chunk(): Promise<void> {
    const v = view(await this.reader.read(CHUNK_HEADER_SIZE - 4));
    const flags = v.getUint16(0);
    const type = v.getUint16(2);
    const handle = getU64(v, 4);
    const length = v.getUint32(12);
    const p = this.take(handle);
    if (type === REPLY_TYPE_NONE) {
      if (length !== 0) throw new NbdProtocolError('a NONE chunk with a payload');
    } else if (type & REPLY_TYPE_ERROR_BIT) {
      p.error ??= await this.errorChunk(length);
    } else if (type === REPLY_TYPE_OFFSET_DATA && p.type === CMD_READ) {
      if (length < 9) throw new NbdProtocolError('an offset-data chunk without data');
      const at = this.chunkRange(p, getU64(view(await this.reader.read(8)), 0), length - 8);
      await this.reader.readInto(p.buf!.subarray(at, at + length - 8));
    } else if (type === REPLY_TYPE_OFFSET_HOLE && p.type === CMD_READ) {
      if (length !== 12) throw new NbdProtocolError('an offset-hole chunk of the wrong size');
      const hv = view(await this.reader.read(12));
      const size = hv.getUint32(8);
      const at = this.chunkRange(p, getU64(hv, 0), size);
      p.buf!.fill(0, at, at + size);
    } else if (type === REPLY_TYPE_BLOCK_STATUS && p.type === CMD_BLOCK_STATUS) {
      if (length < 12 || length > MAX_STATUS_PAYLOAD || (length - 4) % 8 !== 0) {
        throw new NbdProtocolError(`a block-status chunk of ${length} bytes`);
      }
      const bv = view(await this.reader.read(length));
      if (bv.getUint32(0) === this.info.baseAllocationId) {
        for (let at = 4; at < length; at += 8) p.descriptors.push({ length: bv.getUint32(at), flags: bv.getUint32(at + 4) });
      }
    } else {
      throw new NbdProtocolError(`unexpected chunk type ${type} for command ${p.type}`);
    }
    if (flags & REPLY_FLAG_DONE) {
      if (!p.error && p.type === CMD_READ && p.covered !== p.length) {
        throw new NbdProtocolError(`the server sent ${p.covered} of ${p.length} bytes of a read`);
      }
      if (!p.error && p.type === CMD_BLOCK_STATUS && p.descriptors.length === 0) {
        throw new NbdProtocolError('a block-status reply without descriptors');
      }
      this.finish(handle, p, p.error);
    }
  }

  /** Checks a content chunk against its read request; returns its position in the buffer. */
  private chunkRange(p: Pending, offset: number, length: number): number {
    const at = offset - p.offset;
    if (length === 0 || at < 0 || at + length > p.length) {
      throw new NbdProtocolError(`a chunk at offset ${offset} length ${length} outside the read of ${p.offset}+${p.length}`);
    }
    // Content chunks never overlap (NBD structured replies): with no overlap, covered === length means every byte arrived.
    for (let i = 0; i < p.chunks.length; i += 2) {
      if (at < p.chunks[i + 1]! && p.chunks[i]! < at + length) {
        throw new NbdProtocolError(`a chunk at offset ${offset} length ${length} overlaps an earlier chunk of the same read`);
      }
    }
    p.chunks.push(at, at + length);
    p.covered += length;
    return at;
  }

  private async errorChunk(length: number): Promise<NbdCommandError> {
    if (length < 6 || length > MAX_ERROR_PAYLOAD) throw new NbdProtocolError(`an error chunk of ${length} bytes`);
    const payload = await this.reader.read(length);
    const ev = view(payload);
    const msgLength = ev.getUint16(4);
    if (6 + msgLength > length) throw new NbdProtocolError('an error chunk whose message overruns it');
    const message = new TextDecoder().decode(payload.subarray(6, 6 + Math.min(msgLength, MAX_STRING)));
    return new NbdCommandError(ev.getUint32(0) || 5, message);
  }

  private finish(handle: number, p: Pending, error: Error | null): void {
    this.pending.delete(handle);
    if (error) p.reject(error);
    else p.resolve(p.descriptors);
    if (this.pending.size === 0) this.wakeIdle();
  }

  private wakeIdle(): void {
    for (const w of this.idle.splice(0)) w();
  }
}
