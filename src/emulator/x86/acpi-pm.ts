/**
 * ACPI fixed-hardware PM1a registers in port space, as the FADT describes
 * them: the event block (PM1_STS at +0, PM1_EN at +2, 16 bits each) and the
 * control block (PM1_CNT, 16 bits) at its own port. No event is ever raised
 * (no power button, no timer), so the status bits stay 0 and the SCI never
 * fires. PM1_CNT reads with SCI_EN set (the machine is always in ACPI mode);
 * writing SLP_EN with SLP_TYP = the DSDT's \_S5 value reports a poweroff,
 * other sleep types are ignored (the machine has no S1-S4). Accesses of any
 * width at any byte offset merge into the registers as bytes. s5Writes() lists
 * the 16-bit values a guest writes to enter S5 (with SCI_EN as read back or
 * without), for a VMM that catches them before they reach the model.
 */
import type { AccessSize, MmioDevice } from '../bus/interfaces.js';

const SCI_EN = 1 << 0;
const SLP_EN = 1 << 13;
const SLP_TYP_SHIFT = 10;

/** `register` (32 bits) with the `size` bytes at byte `offset` replaced by `value`'s low bytes. */
function mergeBytes(register: number, offset: number, size: AccessSize, value: number): number {
  const shift = offset * 8;
  const mask = (size === 4 ? 0xffff_ffff : ((1 << (size * 8)) - 1) << shift) >>> 0;
  return ((register & ~mask) | ((value << shift) & mask)) >>> 0;
}

function extract(register: number, offset: number, size: AccessSize): number {
  return size === 4 ? register >>> 0 : (register >>> (offset * 8)) & ((1 << (size * 8)) - 1);
}

/** The PM1_CNT values that power off: SLP_TYP(S5) | SLP_EN, with and without SCI_EN. */
export function s5Writes(s5SleepType: number): number[] {
  const value = (s5SleepType << SLP_TYP_SHIFT) | SLP_EN;
  return [value, value | SCI_EN];
}

export class AcpiPmEvents implements MmioDevice {
  /** PM1_EN in the high half; PM1_STS (the low half) is always 0. */
  private register = 0;

  read(offset: number, size: AccessSize): number {
    return extract(this.register, offset, size);
  }

  write(offset: number, size: AccessSize, value: number): void {
    this.register = mergeBytes(this.register, offset, size, value) & 0xffff_0000;
  }
}

export class AcpiPmControl implements MmioDevice {
  private register = SCI_EN;

  constructor(private readonly s5SleepType: number, private readonly onPoweroff: () => void) {}

  read(offset: number, size: AccessSize): number {
    return extract(this.register, offset, size);
  }

  write(offset: number, size: AccessSize, value: number): void {
    const written = mergeBytes(this.register, offset, size, value) & 0xffff;
    this.register = (written & ~SLP_EN) | SCI_EN;
    if (written & SLP_EN && ((written >> SLP_TYP_SHIFT) & 7) === this.s5SleepType) this.onPoweroff();
  }
}
