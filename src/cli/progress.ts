/**
 * The `-p` progress display of long image operations, shaped like qemu-img's:
 * "    (12.34/100%)" followed by a carriage return, rewritten in place on stdout,
 * and a newline when the operation ends. A new figure is printed only when the
 * percentage has moved by at least `minStep` points since the last one (and at 0
 * and 100), so a fast copy does not flood the terminal. A disabled bar prints
 * nothing (no -p, or -q).
 */

export interface ProgressSink {
  write(text: string): unknown;
}

export class ProgressBar {
  private lastPrinted = -Infinity;
  private current = 0;

  constructor(
    private readonly enabled: boolean,
    private readonly minStep = 1,
    private readonly out: ProgressSink = process.stdout,
  ) {
    this.print();
  }

  /** Reports that `done` of `total` units are finished. */
  update(done: number, total: number): void {
    const pct = total > 0 ? Math.min(100, (done / total) * 100) : 100;
    this.current = pct;
    if (pct - this.lastPrinted >= this.minStep || (pct === 100 && this.lastPrinted !== 100)) this.print();
  }

  /** Ends the display: the last figure (100% after success) and a newline. */
  end(): void {
    if (!this.enabled) return;
    this.print();
    this.out.write('\n');
  }

  private print(): void {
    this.lastPrinted = this.current;
    if (this.enabled) this.out.write(`    (${this.current.toFixed(2)}/100%)\r`);
  }
}
