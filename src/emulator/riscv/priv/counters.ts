/**
 * The Zicntr counters: cycle, time and instret (and their M-mode writable
 * twins mcycle/minstret), plus the counter-enable rule for S and U.
 *
 * instret is the HS.INSTRET word the engines advance. cycle has no clock of
 * its own: it counts retired instructions too, offset by MCYCLE_DELTA so that
 * mcycle writes stick. time is the CLINT's mtime (10 MHz, TIMEBASE_HZ) from the
 * `readMtime` callback. Values go through doubles: exact below 2^53, which a
 * counter never reaches in practice; a written value at or above 2^53 may
 * lose its low bits. The hpmcounters read as zero.
 */
import { HS, PRIV_M, PRIV_U } from '../layout.js';
import { CSR_OFF } from './csr-defs.js';
import type { HartState } from './state.js';

export const COUNTER_CYCLE = 0;
export const COUNTER_TIME = 1;
export const COUNTER_INSTRET = 2;

export class Counters {
  constructor(
    private readonly st: HartState,
    private readonly readMtime: () => number,
  ) {}

  /** Value of counter `index` (0..31 as in the CSR number's low bits) as a double. */
  read(index: number): number {
    switch (index) {
      case COUNTER_CYCLE:
        return this.st.getDouble64(HS.INSTRET) + this.st.dv.getFloat64(this.st.base + CSR_OFF.MCYCLE_DELTA, true);
      case COUNTER_TIME:
        return this.readMtime();
      case COUNTER_INSTRET:
        return this.st.getDouble64(HS.INSTRET);
      default:
        return 0;
    }
  }

  writeCycle(value: number): void {
    this.st.dv.setFloat64(this.st.base + CSR_OFF.MCYCLE_DELTA, value - this.st.getDouble64(HS.INSTRET), true);
  }

  writeInstret(lo: number, hi: number): void {
    this.st.set64(HS.INSTRET, lo, hi);
  }

  /** Whether counter `index` may be read at privilege `priv` (mcounteren, then scounteren for U). */
  enabled(index: number, priv: number): boolean {
    if (priv === PRIV_M) return true;
    if (((this.st.get32(CSR_OFF.MCOUNTEREN) >>> index) & 1) === 0) return false;
    return priv !== PRIV_U || ((this.st.get32(CSR_OFF.SCOUNTEREN) >>> index) & 1) === 1;
  }
}
