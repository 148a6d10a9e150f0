/**
 * SiFive's test finisher ("sifive,test0/test1"), the virt machine's poweroff
 * and reboot switch: the device tree's syscon-poweroff and syscon-reboot
 * nodes point at it, and OpenSBI's reset driver writes it too.
 *
 * One register at offset 0, written with 2- or 4-byte stores. The low 16
 * bits of a write say what to do and the high 16 bits carry an exit code:
 * 0x5555 pass (power off, exit with the code), 0x3333 fail (power off, exit
 * with the code), 0x7777 reset. The machine decides what those mean for the
 * process (tsemu exits with 0 on a guest poweroff; a reset restarts the
 * machine) through the callback. Other values and offsets are ignored; reads
 * return 0.
 */
import type { AccessSize, MmioDevice } from '../bus/interfaces.js';

export type TestFinisherEvent = { kind: 'pass'; code: number } | { kind: 'fail'; code: number } | { kind: 'reset' };

const FINISHER_FAIL = 0x3333;
const FINISHER_PASS = 0x5555;
const FINISHER_RESET = 0x7777;

export class SifiveTest implements MmioDevice {
  constructor(private readonly onEvent: (event: TestFinisherEvent) => void) {}

  read(): number {
    return 0;
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (offset !== 0 || size === 1) return;
    const code = value >>> 16;
    switch (value & 0xffff) {
      case FINISHER_PASS:
        this.onEvent({ kind: 'pass', code });
        break;
      case FINISHER_FAIL:
        this.onEvent({ kind: 'fail', code });
        break;
      case FINISHER_RESET:
        this.onEvent({ kind: 'reset' });
        break;
      default:
        break;
    }
  }
}
