/**
 * The server's transmission phase for one connection: requests in, replies out.
 *
 * Requests are read one after another (a WRITE's payload with its header) and run
 * concurrently, at most MAX_IN_FLIGHT at a time and MAX_IN_FLIGHT_BYTES of READ and
 * WRITE data between them; each reply is written whole when
 * its request completes, so replies may leave out of order, as the protocol allows.
 * Reading pauses while the socket's send buffer is full (a client that does not
 * read its replies stops being read).
 *
 * Replies: simple replies unless structured replies were negotiated; then READ
 * answers with offset-data and offset-hole chunks (holes from the image's
 * base:allocation status; one data chunk with DF), BLOCK_STATUS with one
 * block-status chunk (one descriptor with REQ_ONE, else up to MAX_DESCRIPTORS), and
 * errors with an error chunk that carries a message. Other successes are simple
 * replies (allowed for replies without payload).
 *
 * Errors a request can cause: flags the command does not take, or DF without
 * structured replies → EINVAL; a range past the end → EINVAL (ENOSPC for writes);
 * a write, trim or write-zeroes on a read-only export → EPERM; BLOCK_STATUS without
 * a selected context → EINVAL; a failing image → EIO. These leave the connection
 * up. A bad request magic, a READ or WRITE longer than MAX_PAYLOAD, or the client
 * vanishing mid-message end it (NbdProtocolError / NbdClosedError for the caller).
 * DISC (or a close between requests) ends it after the requests in flight finish.
 */
import type { Socket } from 'node:net';
import { BlockRequestError } from '../../block/node.js';
import { type SocketReader } from '../../block/nbd/reader.js';
import { allocationRuns } from './export.js';
import type { NegotiatedSession } from './server-handshake.js';
import {
  CHUNK_HEADER_SIZE,
  CMD_BLOCK_STATUS,
  CMD_DISC,
  CMD_FLAG_DF,
  CMD_FLAG_FUA,
  CMD_FLAG_NO_HOLE,
  CMD_FLAG_REQ_ONE,
  CMD_FLUSH,
  CMD_READ,
  CMD_TRIM,
  CMD_WRITE,
  CMD_WRITE_ZEROES,
  MAX_PAYLOAD,
  NBD_EINVAL,
  NBD_EIO,
  NBD_ENOSPC,
  NBD_EPERM,
  NbdProtocolError,
  REPLY_FLAG_DONE,
  REPLY_TYPE_BLOCK_STATUS,
  REPLY_TYPE_NONE,
  REPLY_TYPE_OFFSET_DATA,
  REPLY_TYPE_OFFSET_HOLE,
  REQUEST_SIZE,
  type Request,
  STATE_ZERO,
  decodeRequest,
  encodeChunk,
  encodeErrorChunk,
  encodeSimpleReply,
  setU64,
  view,
} from '../../block/nbd/protocol.js';

const MAX_IN_FLIGHT = 16;
/** Data of READs and WRITEs in flight at once (one request alone may exceed it). */
const MAX_IN_FLIGHT_BYTES = 64 << 20;
const MAX_DESCRIPTORS = 64;
/** Read replies cut into runs no finer than this many runs per request (a fragmented image sends data). */
const MAX_READ_RUNS = 256;

/** Flags each command accepts (FUA is accepted on every command, as the protocol asks). */
const ALLOWED_FLAGS: Record<number, number> = {
  [CMD_READ]: CMD_FLAG_FUA | CMD_FLAG_DF,
  [CMD_WRITE]: CMD_FLAG_FUA,
  [CMD_FLUSH]: CMD_FLAG_FUA,
  [CMD_TRIM]: CMD_FLAG_FUA,
  [CMD_WRITE_ZEROES]: CMD_FLAG_FUA | CMD_FLAG_NO_HOLE,
  [CMD_BLOCK_STATUS]: CMD_FLAG_FUA | CMD_FLAG_REQ_ONE,
};

const WRITING = new Set([CMD_WRITE, CMD_TRIM, CMD_WRITE_ZEROES]);

/** A request the server refuses with an NBD error value. */
class RequestError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

export class ServerSession {
  private inFlight = 0;
  private inFlightBytes = 0;
  private readonly slotWaiters: (() => void)[] = [];
  private readonly image;

  constructor(
    private readonly socket: Socket,
    private readonly reader: SocketReader,
    private readonly session: NegotiatedSession,
    private readonly log: (line: string) => void,
  ) {
    this.image = session.export.image;
  }

  /** Serves requests until DISC or the client closes between requests; throws on protocol errors. */
  async run(): Promise<void> {
    try {
      for (;;) {
        let header: Uint8Array;
        try {
          header = await this.reader.read(REQUEST_SIZE);
        } catch (e) {
          if ((e as { atBoundary?: boolean }).atBoundary) return;
          throw e;
        }
        const req = decodeRequest(header);
        if (req.type === CMD_DISC) return;
        if ((req.type === CMD_READ || req.type === CMD_WRITE) && req.length > MAX_PAYLOAD) {
          throw new NbdProtocolError(`request of ${req.length} bytes is larger than ${MAX_PAYLOAD}`);
        }
        const bytes = req.type === CMD_READ || req.type === CMD_WRITE ? req.length : 0;
        const payload = req.type === CMD_WRITE ? await this.reader.read(req.length) : null;
        await this.slot(bytes);
        void this.serve(req, payload).finally(() => this.release(bytes));
      }
    } finally {
      while (this.inFlight > 0) await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
    }
  }

  /** Waits until a request carrying `bytes` of data may start, and counts it in. */
  private async slot(bytes: number): Promise<void> {
    const busy = () =>
      this.inFlight >= MAX_IN_FLIGHT || (this.inFlight > 0 && this.inFlightBytes + bytes > MAX_IN_FLIGHT_BYTES);
    while (busy() || this.socket.writableNeedDrain) {
      if (this.socket.destroyed) throw new NbdProtocolError('the connection is closed');
      await new Promise<void>((resolve) => {
        if (busy()) {
          this.slotWaiters.push(resolve);
          return;
        }
        const done = () => {
          this.socket.off('drain', done).off('close', done);
          resolve();
        };
        this.socket.on('drain', done).on('close', done);
      });
    }
    this.inFlight++;
    this.inFlightBytes += bytes;
  }

  private release(bytes: number): void {
    this.inFlight--;
    this.inFlightBytes -= bytes;
    this.slotWaiters.shift()?.();
  }

  private async serve(req: Request, payload: Uint8Array | null): Promise<void> {
    try {
      this.check(req);
      switch (req.type) {
        case CMD_READ:
          return await this.read(req);
        case CMD_BLOCK_STATUS:
          return await this.blockStatus(req);
        case CMD_WRITE:
          await this.image.write(req.offset, payload!, { fua: (req.flags & CMD_FLAG_FUA) !== 0 });
          break;
        case CMD_FLUSH:
          await this.image.flush();
          break;
        case CMD_TRIM:
          await this.image.discard(req.offset, req.length);
          if (req.flags & CMD_FLAG_FUA) await this.image.flush();
          break;
        case CMD_WRITE_ZEROES:
          await this.image.writeZeroes(req.offset, req.length, { mayUnmap: !(req.flags & CMD_FLAG_NO_HOLE) });
          if (req.flags & CMD_FLAG_FUA) await this.image.flush();
          break;
      }
      this.send(encodeSimpleReply(0, req.handle));
    } catch (e) {
      this.sendError(req, e);
    }
  }

  /** Throws RequestError for a request the export cannot take. */
  private check(req: Request): void {
    const allowed = ALLOWED_FLAGS[req.type];
    if (allowed === undefined) throw new RequestError(NBD_EINVAL, `unknown command ${req.type}`);
    if (req.flags & ~allowed) throw new RequestError(NBD_EINVAL, `command ${req.type} does not take flags 0x${req.flags.toString(16)}`);
    if (req.flags & CMD_FLAG_DF && !this.session.structured) {
      throw new RequestError(NBD_EINVAL, 'DF needs structured replies');
    }
    if (WRITING.has(req.type) && this.session.export.readOnly) {
      throw new RequestError(NBD_EPERM, 'the export is read-only');
    }
    if (req.type !== CMD_FLUSH && req.offset + req.length > this.image.size()) {
      throw new RequestError(WRITING.has(req.type) ? NBD_ENOSPC : NBD_EINVAL, `request at offset ${req.offset} length ${req.length} is past the end of the export (${this.image.size()} bytes)`);
    }
  }

  private async read(req: Request): Promise<void> {
    const { offset, length } = req;
    if (!this.session.structured) {
      const data = new Uint8Array(length);
      await this.image.read(offset, data);
      this.send(encodeSimpleReply(0, req.handle), data);
      return;
    }
    if (length === 0) {
      this.send(encodeChunk(REPLY_FLAG_DONE, REPLY_TYPE_NONE, req.handle, 0));
      return;
    }
    const runs = req.flags & CMD_FLAG_DF
      ? [{ length, flags: 0 }]
      : await allocationRuns(this.image, offset, length, MAX_READ_RUNS);
    const covered = runs.reduce((n, r) => n + r.length, 0);
    if (covered < length) runs.push({ length: length - covered, flags: 0 });
    // Read every data run first: an error then becomes one error chunk and nothing else.
    const chunks: Uint8Array[][] = [];
    let at = offset;
    for (const [i, run] of runs.entries()) {
      const done = i === runs.length - 1 ? REPLY_FLAG_DONE : 0;
      if (run.flags & STATE_ZERO) {
        const hole = encodeChunk(done, REPLY_TYPE_OFFSET_HOLE, req.handle, 12, 12);
        setU64(view(hole), CHUNK_HEADER_SIZE, at);
        view(hole).setUint32(CHUNK_HEADER_SIZE + 8, run.length);
        chunks.push([hole]);
      } else {
        const data = new Uint8Array(run.length);
        await this.image.read(at, data);
        const head = encodeChunk(done, REPLY_TYPE_OFFSET_DATA, req.handle, 8 + run.length, 8);
        setU64(view(head), CHUNK_HEADER_SIZE, at);
        chunks.push([head, data]);
      }
      at += run.length;
    }
    this.send(...chunks.flat());
  }

  private async blockStatus(req: Request): Promise<void> {
    const id = this.session.baseAllocationId;
    if (!this.session.structured || id === 0) {
      throw new RequestError(NBD_EINVAL, 'BLOCK_STATUS needs a metadata context selected with NBD_OPT_SET_META_CONTEXT');
    }
    if (req.length === 0) throw new RequestError(NBD_EINVAL, 'BLOCK_STATUS of zero bytes');
    const max = req.flags & CMD_FLAG_REQ_ONE ? 1 : MAX_DESCRIPTORS;
    const runs = await allocationRuns(this.image, req.offset, req.length, max);
    const chunk = encodeChunk(REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, req.handle, 4 + 8 * runs.length, 4 + 8 * runs.length);
    const v = view(chunk);
    v.setUint32(CHUNK_HEADER_SIZE, id);
    runs.forEach((run, i) => {
      v.setUint32(CHUNK_HEADER_SIZE + 4 + 8 * i, run.length);
      v.setUint32(CHUNK_HEADER_SIZE + 8 + 8 * i, run.flags);
    });
    this.send(chunk);
  }

  private sendError(req: Request, e: unknown): void {
    const known = e instanceof RequestError;
    const code = known ? e.code : e instanceof BlockRequestError ? NBD_EINVAL : NBD_EIO;
    const message = (e as Error).message;
    if (!known) this.log(`request ${req.type} at offset ${req.offset} length ${req.length} failed: ${message}`);
    this.send(this.session.structured ? encodeErrorChunk(req.handle, code, message) : encodeSimpleReply(code, req.handle));
  }

  /** Writes one reply's parts back to back. */
  private send(...parts: Uint8Array[]): void {
    if (this.socket.destroyed) return;
    this.socket.cork();
    for (const p of parts) this.socket.write(p);
    this.socket.uncork();
  }
}
