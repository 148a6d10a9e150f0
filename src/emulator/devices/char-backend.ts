/**
 * The contract between a character device model (the 16550 UART) and the
 * host side of a serial line, in the spirit of QEMU's chardev front/back split.
 *
 * Output: the device calls `write` with the bytes the guest transmitted; a
 * backend must not block and may buffer. Input is flow-controlled by the
 * device: the backend offers bytes through `CharSink.receive` only while
 * `canReceive()` is above zero and never more than that many; bytes it cannot
 * deliver yet it keeps, and it retries when the device calls `resume()` (the
 * guest made room by reading). So nothing is dropped while the guest is slow
 * to read.
 *
 * QueuedCharBackend adapts a push-style source (chardev/backend.ts's
 * SerialBackend: write + onInput) to this contract: output goes to a
 * callback, input is queued by `push` until the device takes it.
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

export class QueuedCharBackend implements CharBackend {
  private readonly queue: Uint8Array[] = [];
  /** Bytes of queue[0] already delivered. */
  private consumed = 0;
  private queued = 0;
  private sink: CharSink | undefined;

  constructor(private readonly output: (bytes: Uint8Array) => void) {}

  write(bytes: Uint8Array): void {
    this.output(bytes);
  }

  connect(sink: CharSink): void {
    this.sink = sink;
    this.resume();
  }

  resume(): void {
    const sink = this.sink;
    if (!sink) return;
    let room = sink.canReceive();
    while (room > 0 && this.queue.length > 0) {
      const head = this.queue[0];
      const n = Math.min(room, head.length - this.consumed);
      const chunk = head.subarray(this.consumed, this.consumed + n);
      this.consumed += n;
      this.queued -= n;
      if (this.consumed === head.length) {
        this.queue.shift();
        this.consumed = 0;
      }
      sink.receive(chunk);
      room = sink.canReceive();
    }
  }

  /** Queues input for the device (host → guest). */
  push(input: Uint8Array | string): void {
    const bytes = typeof input === 'string' ? new TextEncoder().encode(input) : Uint8Array.from(input);
    if (bytes.length === 0) return;
    this.queue.push(bytes);
    this.queued += bytes.length;
    this.resume();
  }

  /** Input still waiting for room in the device. */
  get pendingInput(): number {
    return this.queued;
  }
}
