/**
 * The PC's CMOS RTC (MC146818) on ports 0x70 (index; bit 7 masks NMI) and
 * 0x71 (data). The clock registers (0 seconds, 2 minutes, 4 hours, 6 day of
 * week, 7 day, 8 month, 9 year, 0x32 century) read the host's UTC time plus
 * an offset, in BCD or binary and 24-hour or 12-hour form as register B says;
 * a guest write to one of them moves the offset. Register A reads with UIP
 * clear and the 32.768 kHz divider, C reads 0 (no periodic, alarm or update
 * interrupts: the RTC's IRQ 8 is never raised), D reads "battery good". The
 * other bytes of the 128-byte CMOS memory hold what the guest writes.
 */
import type { AccessSize, MmioDevice } from '../bus/interfaces.js';

const REG_A = 0x0a;
const REG_B = 0x0b;
const REG_C = 0x0c;
const REG_D = 0x0d;
const CENTURY = 0x32;
const B_24H = 0x02;
const B_BINARY = 0x04;

export class CmosRtc implements MmioDevice {
  private index = 0;
  private readonly memory = new Uint8Array(128);
  private offsetMs = 0;

  constructor(private readonly now: () => number = Date.now) {
    this.memory[REG_A] = 0x26;
    this.memory[REG_B] = B_24H;
    this.memory[REG_D] = 0x80;
  }

  read(offset: number, _size: AccessSize): number {
    if (offset === 0) return this.index;
    return this.readRegister(this.index);
  }

  write(offset: number, _size: AccessSize, value: number): void {
    if (offset === 0) this.index = value & 0x7f;
    else this.writeRegister(this.index, value & 0xff);
  }

  private clock(): Date {
    return new Date(this.now() + this.offsetMs);
  }

  private fields(date: Date): Map<number, number> {
    return new Map([
      [0, date.getUTCSeconds()],
      [2, date.getUTCMinutes()],
      [4, date.getUTCHours()],
      [6, date.getUTCDay() + 1],
      [7, date.getUTCDate()],
      [8, date.getUTCMonth() + 1],
      [9, date.getUTCFullYear() % 100],
      [CENTURY, Math.floor(date.getUTCFullYear() / 100)],
    ]);
  }

  private encode(register: number, value: number): number {
    const b = this.memory[REG_B];
    let pm = 0;
    if (register === 4 && !(b & B_24H)) {
      pm = value >= 12 ? 0x80 : 0;
      value = value % 12 || 12;
    }
    return (b & B_BINARY ? value : Math.floor(value / 10) * 16 + (value % 10)) | pm;
  }

  private decode(register: number, raw: number): number {
    const b = this.memory[REG_B];
    const pm = register === 4 && !(b & B_24H) && raw & 0x80;
    const byte = register === 4 && !(b & B_24H) ? raw & 0x7f : raw;
    let value = b & B_BINARY ? byte : (byte >> 4) * 10 + (byte & 15);
    if (register === 4 && !(b & B_24H)) value = (value % 12) + (pm ? 12 : 0);
    return value;
  }

  private readRegister(register: number): number {
    if (register === REG_C) return 0;
    const value = this.fields(this.clock()).get(register);
    return value === undefined ? this.memory[register] : this.encode(register, value);
  }

  private writeRegister(register: number, value: number): void {
    if (register === REG_C || register === REG_D) return;
    const date = this.clock();
    const current = this.fields(date).get(register);
    if (current === undefined) {
      this.memory[register] = register === REG_A ? value & 0x7f : value;
      return;
    }
    const target = new Date(date.getTime());
    const v = this.decode(register, value);
    switch (register) {
      case 0: target.setUTCSeconds(v); break;
      case 2: target.setUTCMinutes(v); break;
      case 4: target.setUTCHours(v); break;
      case 6: return; // the day of the week follows from the date
      case 7: target.setUTCDate(v); break;
      case 8: target.setUTCMonth(v - 1); break;
      case 9: target.setUTCFullYear(Math.floor(date.getUTCFullYear() / 100) * 100 + v); break;
      case CENTURY: target.setUTCFullYear(v * 100 + (date.getUTCFullYear() % 100)); break;
    }
    this.offsetMs += target.getTime() - date.getTime();
  }
}
