/**
 * QEMU's terminal escapes for a serial console on stdio: Ctrl-A (0x01)
 * followed by one key is a command to the emulator, not guest input.
 *
 *   C-a x    quit tsemu
 *   C-a c    (reserved for the monitor; says it is not available yet)
 *   C-a h    print the list of escapes
 *   C-a C-a  send one C-a to the guest
 *
 * Any other key after C-a is dropped with the C-a. The filter is a two-state
 * machine (normal, after C-a) that survives input split across reads.
 */

export const ESCAPE_CHAR = 0x01;

export type EscapeCommand = 'quit' | 'monitor' | 'help';

export const ESCAPE_HELP =
  '\r\nC-a h    print this help\r\n' +
  'C-a x    exit emulator\r\n' +
  'C-a c    switch to the monitor (not available yet)\r\n' +
  'C-a C-a  sends C-a\r\n';

const COMMANDS: Record<number, EscapeCommand> = {
  [0x78]: 'quit', // x
  [0x63]: 'monitor', // c
  [0x68]: 'help', // h
};

export class EscapeFilter {
  private afterEscape = false;

  constructor(private readonly onCommand: (command: EscapeCommand) => void) {}

  /** Returns the bytes meant for the guest; runs the commands found in `input`. */
  filter(input: Uint8Array): Uint8Array {
    const out: number[] = [];
    for (const byte of input) {
      if (this.afterEscape) {
        this.afterEscape = false;
        if (byte === ESCAPE_CHAR) out.push(byte);
        else if (COMMANDS[byte]) this.onCommand(COMMANDS[byte]);
      } else if (byte === ESCAPE_CHAR) {
        this.afterEscape = true;
      } else {
        out.push(byte);
      }
    }
    return Uint8Array.from(out);
  }
}
