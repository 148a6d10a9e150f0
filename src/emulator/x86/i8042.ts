/**
 * The PC keyboard controller (8042) as far as a machine without a keyboard
 * needs it: a guest's reset. Port 0x60 is data, 0x64 status (read) and
 * command (write). Commands: 0x20 read and 0x60 write the configuration
 * byte, 0xAA self-test (answers 0x55), 0xAB interface test (answers 0),
 * 0xAD/0xAE/0xA7/0xA8 disable/enable ports (accepted), 0xD1 write the output
 * port (a value with bit 0 clear pulses reset), 0xFE pulse the reset line.
 * Either reset calls onReset. No keyboard or mouse is attached: no scancode
 * ever arrives and IRQ 1/12 are never raised.
 */
import type { AccessSize, MmioDevice } from '../bus/interfaces.js';

const STATUS_OBF = 0x01;
const STATUS_SYSTEM = 0x04;
const STATUS_COMMAND = 0x08;

export class I8042 {
  private config = 0x30; // both ports disabled, no interrupts
  private output: number | undefined;
  private pendingCommand: number | undefined;
  private lastWasCommand = false;

  constructor(private readonly onReset: () => void) {}

  /** The data port (0x60). */
  readonly data: MmioDevice = {
    read: () => {
      const value = this.output ?? 0;
      this.output = undefined;
      return value;
    },
    write: (_offset: number, _size: AccessSize, value: number) => this.writeData(value & 0xff),
  };

  /** The status/command port (0x64). */
  readonly command: MmioDevice = {
    read: () => (this.output === undefined ? 0 : STATUS_OBF) | STATUS_SYSTEM | (this.lastWasCommand ? STATUS_COMMAND : 0),
    write: (_offset: number, _size: AccessSize, value: number) => this.writeCommand(value & 0xff),
  };

  private writeData(value: number): void {
    this.lastWasCommand = false;
    const command = this.pendingCommand;
    this.pendingCommand = undefined;
    if (command === 0x60) this.config = value;
    else if (command === 0xd1 && !(value & 1)) this.onReset();
  }

  private writeCommand(value: number): void {
    this.lastWasCommand = true;
    switch (value) {
      case 0x20:
        this.output = this.config;
        break;
      case 0x60:
      case 0xd1:
        this.pendingCommand = value;
        break;
      case 0xaa:
        this.output = 0x55;
        break;
      case 0xab:
      case 0xa9:
        this.output = 0;
        break;
      case 0xfe:
        this.onReset();
        break;
      default:
        break; // port enables/disables and the rest: accepted, no effect
    }
  }
}
