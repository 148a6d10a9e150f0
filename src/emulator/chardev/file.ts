/**
 * A file as a serial console (-serial file:PATH): guest output is written to
 * PATH (created or truncated when the backend opens); there is no input.
 * Writes are buffered by a write stream; close() waits until they are on disk.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import type { SerialBackend } from './backend.js';

export class FileSerial implements SerialBackend {
  private stream: WriteStream | null = null;

  constructor(private readonly path: string) {}

  write(bytes: Uint8Array): void {
    // The stream keeps its own buffer; copy because callers may reuse theirs.
    this.stream?.write(Buffer.from(bytes));
  }

  onInput(): void {}

  async open(): Promise<void> {
    if (this.stream) return;
    const stream = createWriteStream(this.path, { flags: 'w' });
    await once(stream, 'open');
    this.stream = stream;
  }

  async close(): Promise<void> {
    const stream = this.stream;
    if (!stream) return;
    this.stream = null;
    await new Promise<void>((resolve, reject) => stream.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }
}
