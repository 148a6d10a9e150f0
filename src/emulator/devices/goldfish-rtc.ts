/**
 * The goldfish real-time clock ("google,goldfish-rtc"), the virt machine's
 * RTC: wall-clock time in nanoseconds since the Unix epoch.
 *
 * Registers (32-bit, offsets): 0x00 TIME_LOW, 0x04 TIME_HIGH, 0x08 ALARM_LOW,
 * 0x0c ALARM_HIGH, 0x10 IRQ_ENABLED, 0x14 CLEAR_ALARM, 0x18 ALARM_STATUS,
 * 0x1c CLEAR_INTERRUPT. Reading TIME_LOW samples the clock and latches the
 * high half for the TIME_HIGH read that follows. Setting the time: write
 * TIME_HIGH, then TIME_LOW (which applies both); the guest's time then runs
 * at host speed from the value written (an offset, the host clock untouched).
 * Alarms: ALARM_HIGH then ALARM_LOW arms one, CLEAR_ALARM disarms it,
 * ALARM_STATUS reads 1 while armed. Limit: an alarm never fires (nothing in
 * the guests tsemu runs waits for one), so the IRQ line stays low; writing
 * CLEAR_INTERRUPT is accepted and does nothing else.
 *
 * Off the hot path: 64-bit values are BigInt here.
 */
import type { AccessSize, MmioDevice } from '../bus/interfaces.js';

const TIME_LOW = 0x00;
const TIME_HIGH = 0x04;
const ALARM_LOW = 0x08;
const ALARM_HIGH = 0x0c;
const IRQ_ENABLED = 0x10;
const CLEAR_ALARM = 0x14;
const ALARM_STATUS = 0x18;

const MASK32 = 0xffff_ffffn;

/** Host wall-clock time in nanoseconds since the epoch. */
export function hostNanoseconds(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
}

export class GoldfishRtc implements MmioDevice {
  private offset = 0n;
  private latchedHigh = 0;
  private timeHigh = 0;
  private alarmHigh = 0;
  private alarm = 0n;
  private alarmArmed = false;
  private irqEnabled = 0;

  constructor(private readonly clock: () => bigint = hostNanoseconds) {}

  private now(): bigint {
    return this.clock() + this.offset;
  }

  read(offset: number, size: AccessSize): number {
    if (size !== 4) return 0;
    switch (offset) {
      case TIME_LOW: {
        const now = this.now();
        this.latchedHigh = Number((now >> 32n) & MASK32);
        return Number(now & MASK32);
      }
      case TIME_HIGH:
        return this.latchedHigh;
      case ALARM_LOW:
        return Number(this.alarm & MASK32);
      case ALARM_HIGH:
        return Number((this.alarm >> 32n) & MASK32);
      case IRQ_ENABLED:
        return this.irqEnabled;
      case ALARM_STATUS:
        return this.alarmArmed ? 1 : 0;
      default:
        return 0;
    }
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (size !== 4) return;
    const v = value >>> 0;
    switch (offset) {
      case TIME_HIGH:
        this.timeHigh = v;
        break;
      case TIME_LOW:
        this.offset = ((BigInt(this.timeHigh) << 32n) | BigInt(v)) - this.clock();
        break;
      case ALARM_HIGH:
        this.alarmHigh = v;
        break;
      case ALARM_LOW:
        this.alarm = (BigInt(this.alarmHigh) << 32n) | BigInt(v);
        this.alarmArmed = true;
        break;
      case IRQ_ENABLED:
        this.irqEnabled = v & 1;
        break;
      case CLEAR_ALARM:
        this.alarmArmed = false;
        break;
      default:
        break;
    }
  }
}
