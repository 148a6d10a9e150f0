/**
 * The 16550A UART, the console of the virt machine (registers one byte apart,
 * as QEMU's virt board and the device tree's ns16550a describe it).
 *
 * Registers (offset: read / write): 0 RBR / THR (DLL when LCR.DLAB), 1 IER
 * (DLM when DLAB), 2 IIR / FCR, 3 LCR, 4 MCR, 5 LSR, 6 MSR, 7 SCR. Any access
 * width works on the byte at the offset; other offsets read 0.
 *
 * Transmit is instantaneous: a byte written to THR goes straight to the
 * backend (or, in loopback mode, into the receive FIFO), so THR and the
 * shifter are always empty (LSR.THRE and TEMT always set) and the divisor
 * latch only holds its value. The receive FIFO holds 16 bytes (1 when FCR
 * disables FIFOs); input from the backend is flow-controlled by its free
 * space (see char-backend.ts), so only loopback can overrun it (LSR.OE).
 *
 * Interrupts, highest priority first, as IIR reports them: receiver line
 * status (overrun), received data (at or above the FCR trigger level; below
 * it the character-timeout id is reported at once instead of after four
 * character times), THR empty (raised when THR is written or ETBEI is set,
 * cleared by reading IIR while it is the reported source, or by writing THR),
 * modem status (delta bits, which only loopback can produce: outside loopback
 * the modem lines read as DCD, DSR and CTS asserted). The IRQ line follows
 * "some interrupt pending" and is driven only on changes.
 *
 * Reads without the round trip: peek() answers what a read of a register
 * would return when that read has no side effects (-1 when it has: popping
 * RBR, acknowledging IIR, clearing LSR.OE or the MSR deltas), and
 * storeKeepsPeeks() says whether a byte store at an offset leaves every
 * peek() answer as it is (a byte transmitted outside loopback and DLAB only
 * sets the THR-empty interrupt, which IIR reports and IIR is never peeked).
 * A machine whose vCPUs run on other threads keeps a copy of these answers
 * in shared memory (vcpu/mmio-shadow.ts), refreshed from onChange, which the
 * device calls after every access and every byte received.
 */
import type { AccessSize, IrqLine, MmioDevice } from '../bus/interfaces.js';
import type { CharBackend, CharSink } from './char-backend.js';

const FIFO_SIZE = 16;
/** Registers at offsets 0..7; the window's other offsets read 0. */
const REGISTERS = 8;

const IER_RX = 0x01;
const IER_THRE = 0x02;
const IER_LINE = 0x04;
const IER_MODEM = 0x08;

const IIR_NONE = 0x01;
const IIR_LINE = 0x06;
const IIR_RX = 0x04;
const IIR_TIMEOUT = 0x0c;
const IIR_THRE = 0x02;
const IIR_MODEM = 0x00;
const IIR_FIFO_ON = 0xc0;

const FCR_ENABLE = 0x01;
const FCR_CLEAR_RX = 0x02;
const RX_TRIGGER_LEVELS = [1, 4, 8, 14];

const LCR_DLAB = 0x80;
const MCR_LOOP = 0x10;

const LSR_DR = 0x01;
const LSR_OE = 0x02;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;

/** MSR status bits (CTS, DSR, RI, DCD) and the delta bits below them. */
const MSR_CTS = 0x10;
const MSR_DSR = 0x20;
const MSR_RI = 0x40;
const MSR_DCD = 0x80;

export class Uart16550 implements MmioDevice, CharSink {
  private readonly rx = new Uint8Array(FIFO_SIZE);
  private rxHead = 0;
  private rxCount = 0;
  private fifoEnabled = false;
  private rxTrigger = 1;
  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private scr = 0;
  private dll = 0;
  private dlm = 0;
  private overrun = false;
  private threPending = false;
  private msrDelta = 0;
  private irqLevel = false;
  private changed: () => void = () => {};

  constructor(
    private readonly irq: IrqLine,
    private readonly backend: CharBackend,
  ) {
    backend.connect(this);
  }

  canReceive(): number {
    if (this.mcr & MCR_LOOP) return 0;
    return this.capacity() - this.rxCount;
  }

  receive(bytes: Uint8Array): void {
    for (const b of bytes) this.pushRx(b);
    this.update();
    this.changed();
  }

  /** Offsets peek() answers for (0 up to this). */
  get peekable(): number {
    return REGISTERS;
  }

  /** Calls `listener` after every access and every byte received (whatever changed). */
  onChange(listener: () => void): void {
    this.changed = listener;
  }

  read(offset: number, _size: AccessSize): number {
    const value = this.readRegister(offset);
    this.changed();
    return value;
  }

  /** What a read at `offset` returns if that read changes nothing, else -1. */
  peek(offset: number): number {
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (offset) {
      case 0:
        return dlab ? this.dll : this.rxCount === 0 ? 0 : -1;
      case 2:
        return -1;
      case 5:
        return this.overrun ? -1 : this.lsr();
      case 6:
        return this.msrDelta !== 0 ? -1 : this.modemStatus();
      default:
        return this.readRegister(offset);
    }
  }

  /** True when a byte store at `offset` leaves every peek() answer unchanged. */
  storeKeepsPeeks(offset: number): boolean {
    return offset === 0 && (this.lcr & LCR_DLAB) === 0 && (this.mcr & MCR_LOOP) === 0;
  }

  private readRegister(offset: number): number {
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (offset) {
      case 0:
        return dlab ? this.dll : this.popRx();
      case 1:
        return dlab ? this.dlm : this.ier;
      case 2:
        return this.readIir();
      case 3:
        return this.lcr;
      case 4:
        return this.mcr;
      case 5:
        return this.readLsr();
      case 6:
        return this.readMsr();
      case 7:
        return this.scr;
      default:
        return 0;
    }
  }

  write(offset: number, size: AccessSize, value: number): void {
    this.writeRegister(offset, size, value);
    this.changed();
  }

  private writeRegister(offset: number, _size: AccessSize, value: number): void {
    const byte = value & 0xff;
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (offset) {
      case 0:
        if (dlab) this.dll = byte;
        else this.transmit(byte);
        break;
      case 1:
        if (dlab) this.dlm = byte;
        else this.writeIer(byte);
        break;
      case 2:
        this.writeFcr(byte);
        break;
      case 3:
        this.lcr = byte;
        break;
      case 4:
        this.writeMcr(byte);
        break;
      case 7:
        this.scr = byte;
        break;
      default:
        break; // LSR and MSR are read-only
    }
  }

  private capacity(): number {
    return this.fifoEnabled ? FIFO_SIZE : 1;
  }

  private pushRx(byte: number): void {
    if (this.rxCount >= this.capacity()) {
      this.overrun = true;
      return;
    }
    this.rx[(this.rxHead + this.rxCount) % FIFO_SIZE] = byte;
    this.rxCount++;
  }

  private popRx(): number {
    if (this.rxCount === 0) return 0;
    const byte = this.rx[this.rxHead];
    this.rxHead = (this.rxHead + 1) % FIFO_SIZE;
    this.rxCount--;
    this.update();
    this.backend.resume();
    return byte;
  }

  private clearRx(): void {
    this.rxHead = 0;
    this.rxCount = 0;
  }

  private transmit(byte: number): void {
    if (this.mcr & MCR_LOOP) this.pushRx(byte);
    else this.backend.write(Uint8Array.of(byte));
    this.threPending = true;
    this.update();
  }

  private writeIer(value: number): void {
    const wasThre = (this.ier & IER_THRE) !== 0;
    this.ier = value & 0x0f;
    if (!wasThre && this.ier & IER_THRE) this.threPending = true;
    this.update();
  }

  private writeFcr(value: number): void {
    const enable = (value & FCR_ENABLE) !== 0;
    if (enable !== this.fifoEnabled) {
      this.fifoEnabled = enable;
      this.clearRx();
    }
    if (enable) {
      if (value & FCR_CLEAR_RX) this.clearRx();
      this.rxTrigger = RX_TRIGGER_LEVELS[value >> 6];
    }
    this.update();
    this.backend.resume();
  }

  private writeMcr(value: number): void {
    const before = this.modemStatus();
    this.mcr = value & 0x1f;
    const after = this.modemStatus();
    const changed = before ^ after;
    // Delta bits: CTS, DSR and DCD on any change; RI on its trailing edge.
    this.msrDelta |= ((changed & (MSR_CTS | MSR_DSR | MSR_DCD)) | (before & ~after & MSR_RI)) >> 4;
    this.update();
    this.backend.resume();
  }

  private modemStatus(): number {
    if (!(this.mcr & MCR_LOOP)) return MSR_DCD | MSR_DSR | MSR_CTS;
    const m = this.mcr;
    return (m & 0x02 ? MSR_CTS : 0) | (m & 0x01 ? MSR_DSR : 0) | (m & 0x04 ? MSR_RI : 0) | (m & 0x08 ? MSR_DCD : 0);
  }

  private readMsr(): number {
    const value = this.modemStatus() | this.msrDelta;
    this.msrDelta = 0;
    this.update();
    return value;
  }

  private lsr(): number {
    return (this.rxCount > 0 ? LSR_DR : 0) | (this.overrun ? LSR_OE : 0) | LSR_THRE | LSR_TEMT;
  }

  private readLsr(): number {
    const value = this.lsr();
    this.overrun = false;
    this.update();
    return value;
  }

  private readIir(): number {
    const id = this.interruptId();
    if (id === IIR_THRE) {
      this.threPending = false;
      this.update();
    }
    return id | (this.fifoEnabled ? IIR_FIFO_ON : 0);
  }

  private interruptId(): number {
    if (this.ier & IER_LINE && this.overrun) return IIR_LINE;
    if (this.ier & IER_RX && this.rxCount > 0) {
      return this.fifoEnabled && this.rxCount < this.rxTrigger ? IIR_TIMEOUT : IIR_RX;
    }
    if (this.ier & IER_THRE && this.threPending) return IIR_THRE;
    if (this.ier & IER_MODEM && this.msrDelta !== 0) return IIR_MODEM;
    return IIR_NONE;
  }

  private update(): void {
    const level = this.interruptId() !== IIR_NONE;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq.set(level);
    }
  }
}
