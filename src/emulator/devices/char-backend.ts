/**
 * The contract between a character device model (the 16550 UART) and a
 * serial backend (stdio, a file, a TCP socket: H6's chardev layer), in the
 * spirit of QEMU's chardev front/back split.
 *
 * Output: the device calls `write` with the bytes the guest transmitted; a
 * backend must not block and may buffer. Input is flow-controlled by the
 * device: the backend offers bytes through `CharSink.receive` only while
 * `canReceive()` is above zero and never more than that many; bytes it cannot
 * deliver yet it keeps, and it retries when the device calls `resume()`
 * (the guest made room by reading). So nothing is dropped while the guest is
 * slow to read, and a backend can pause its source (stop reading a socket).
 *
 * MemoryCharBackend is the in-process backend: output collected in memory,
 * input queued by `push`. Tests and scripted consoles use it.
 */

export interface CharSink {
  /** How many bytes the device can take right now. */
  canReceive(): number;
  /** Delivers at most canReceive() bytes. */
  receive(bytes: Uint8Array): void;
}

export interface CharBackend {
  /** Bytes the guest sent (device → host). */
  write(bytes: Uint8Array): void;
  /** Attaches the device's input side; the backend delivers input to it from now on. */
  connect(sink: CharSink): void;
  /** The device has room again: deliver held input. */
  resume(): void;
}

export class MemoryCharBackend implements CharBackend {
  private readonly chunks: Uint8Array[] = [];
  private pending: number[] = [];
  private sink: CharSink | undefined;
  /** Called after each write with the new bytes (optional, e.g. to watch for a marker). */
  onOutput: ((bytes: Uint8Array) => void) | undefined;

  write(bytes: Uint8Array): void {
    const copy = Uint8Array.from(bytes);
    this.chunks.push(copy);
    this.onOutput?.(copy);
  }

  connect(sink: CharSink): void {
    this.sink = sink;
    this.resume();
  }

  resume(): void {
    if (!this.sink || this.pending.length === 0) return;
    const n = Math.min(this.sink.canReceive(), this.pending.length);
    if (n <= 0) return;
    const batch = Uint8Array.from(this.pending.slice(0, n));
    this.pending = this.pending.slice(n);
    this.sink.receive(batch);
  }

  /** Queues input for the device (host → guest). */
  push(input: Uint8Array | string): void {
    const bytes = typeof input === 'string' ? new TextEncoder().encode(input) : input;
    this.pending.push(...bytes);
    this.resume();
  }

  /** Input still waiting for room in the device. */
  get pendingInput(): number {
    return this.pending.length;
  }

  /** Everything written so far. */
  output(): Uint8Array {
    return Uint8Array.from(this.chunks.flatMap((c) => [...c]));
  }

  outputText(): string {
    return new TextDecoder().decode(this.output());
  }
}
