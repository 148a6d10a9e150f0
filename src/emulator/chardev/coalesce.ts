/**
 * Coalesces guest output for a backend whose writes cost a system call or a
 * packet each: a UART hands over one byte per guest store, so bytes written in
 * one turn of the event loop are gathered and passed on together in the next
 * (setImmediate). flush() passes on what is pending at once (before closing).
 */
export class OutputCoalescer {
  private pending: Uint8Array[] = [];
  private scheduled = false;

  constructor(private readonly sink: (bytes: Uint8Array) => void) {}

  write(bytes: Uint8Array): void {
    this.pending.push(Uint8Array.from(bytes));
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const chunks = this.pending;
    this.pending = [];
    this.sink(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
  }
}
