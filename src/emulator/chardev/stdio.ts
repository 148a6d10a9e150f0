/**
 * The terminal as a serial console (-serial stdio, the default). Guest output
 * goes to stdout as is (the bytes of one event-loop turn in one write,
 * coalesce.ts); stdin is put in raw mode when it is a terminal (so Ctrl-C
 * reaches the guest) and passes through the Ctrl-A escape filter
 * (escape.ts). Escape commands are reported to the owner (the machine quits
 * on C-a x); help and the monitor notice are printed here.
 *
 * States: closed → open (stdin flowing, raw mode if a TTY) → closed (raw mode
 * restored, stdin paused so the process can exit). End of input (a pipe that
 * closes) just stops input; the guest keeps running.
 */
import type { SerialBackend } from './backend.js';
import { OutputCoalescer } from './coalesce.js';
import { ESCAPE_HELP, EscapeFilter, type EscapeCommand } from './escape.js';

export class StdioSerial implements SerialBackend {
  private inputHandler: (bytes: Uint8Array) => void = () => {};
  private readonly escapes: EscapeFilter;
  private readonly out: OutputCoalescer;
  private rawMode = false;
  private opened = false;
  private readonly onData = (chunk: Buffer): void => {
    const bytes = this.escapes.filter(chunk);
    if (bytes.length > 0) this.inputHandler(bytes);
  };

  constructor(
    private readonly onQuit: () => void,
    private readonly input: NodeJS.ReadStream = process.stdin,
    private readonly output: NodeJS.WritableStream = process.stdout,
  ) {
    this.escapes = new EscapeFilter((command) => this.runEscape(command));
    this.out = new OutputCoalescer((bytes) => this.output.write(bytes));
  }

  private runEscape(command: EscapeCommand): void {
    this.out.flush();
    if (command === 'quit') this.onQuit();
    else if (command === 'help') this.output.write(ESCAPE_HELP);
    else this.output.write('\r\ntsemu: the monitor is not available yet\r\n');
  }

  write(bytes: Uint8Array): void {
    this.out.write(bytes);
  }

  onInput(handler: (bytes: Uint8Array) => void): void {
    this.inputHandler = handler;
  }

  async open(): Promise<void> {
    if (this.opened) return;
    this.opened = true;
    if (this.input.isTTY) {
      this.input.setRawMode(true);
      this.rawMode = true;
      process.once('exit', this.restoreTerminal);
    }
    this.input.on('data', this.onData);
    this.input.resume();
  }

  async close(): Promise<void> {
    this.out.flush();
    if (!this.opened) return;
    this.opened = false;
    this.input.off('data', this.onData);
    this.input.pause();
    this.restoreTerminal();
    process.off('exit', this.restoreTerminal);
  }

  /** Leaves raw mode (also on process exit, so a dying tsemu does not leave the terminal raw). */
  private readonly restoreTerminal = (): void => {
    if (!this.rawMode) return;
    this.input.setRawMode(false);
    this.rawMode = false;
  };
}
