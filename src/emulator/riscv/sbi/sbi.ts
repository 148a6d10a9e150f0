/**
 * tsemu's SBI: the supervisor binary interface a kernel calls with ecall,
 * served by tsemu itself instead of M-mode firmware (the default boot; with
 * --bios a real OpenSBI runs instead and this module is unused).
 *
 * Theory of operation. The hart's ecall-from-S hook calls handle(hart) on the
 * hart's vCPU thread. handle() reads the call from the hart's registers in the
 * shared state block (a7 = extension id, a6 = function id, a0..a5 = arguments),
 * runs it, and writes the SBI return pair (a0 = error, a1 = value; legacy calls
 * return a0 only). tsemu plays M-mode, so what firmware would do with M-mode
 * state is done on the shared words directly:
 *
 *   BASE    spec version 2.0, implementation id/version, probe_extension
 *   TIME    set_timer → platform.setTimer (the hart's mtimecmp; clears STIP)
 *   IPI     send_ipi → SSIP on each target (HartControl.raiseInterrupt)
 *   RFENCE  fence.i / sfence.vma(.asid) → the target's FLUSH_REQUEST word; the
 *           target flushes its TLB and translated code at its next interrupt
 *           check (always a full flush: ranges and ASIDs are not tracked)
 *   HSM     start/stop/get_status/suspend through the HSM words (hart-control.ts);
 *           the calling hart's vCPU loop acts on a stop or suspend after the
 *           ecall returns (its EXIT_REQUEST is set)
 *   SRST    shutdown / cold or warm reboot → platform.systemReset
 *   DBCN    console write/read/write_byte → platform console (guest-physical buffers)
 *   legacy  set_timer (0x00), console_putchar (0x01), console_getchar (0x02),
 *           shutdown (0x08); the other legacy calls are not supported
 *
 * Guest mistakes (bad hart ids, buffers outside RAM, unknown calls) become SBI
 * error codes, never host exceptions.
 */
import { HS, hartStateBase } from '../layout.js';
import { CSR_OFF, MIP_SSIP } from '../priv/csr-defs.js';
import { HSM, HartControl } from '../../vcpu/hart-control.js';
import {
  BASE_FID, DBCN_FID, EID, HSM_FID, HSM_SUSPEND, RFENCE_FID, SBI_ERR, SBI_IMPL_ID, SBI_IMPL_VERSION,
  SBI_SPEC_VERSION, SRST_REASON, SRST_TYPE,
} from './constants.js';

/** What the SBI needs from the machine around it. */
export interface SbiPlatform {
  readonly hartCount: number;
  /** Guest RAM (for start addresses and console buffers). */
  readonly ram: { base: number; size: number };
  /** Programs hart's timer compare value (64 bits as halves) and clears its pending STIP. */
  setTimer(hart: number, lo: number, hi: number): void;
  /** Writes `length` bytes of guest RAM at `gpa` to the console; returns how many it took. */
  consoleWrite(gpa: number, length: number): number;
  /** Reads up to `length` bytes of console input into guest RAM at `gpa`; returns how many. */
  consoleRead(gpa: number, length: number): number;
  consoleWriteByte(byte: number): void;
  /** One byte of console input, or -1 when there is none. */
  consoleGetChar(): number;
  /** Shuts the machine down (type 0) or reboots it (1 cold, 2 warm); reason 1 = system failure. */
  systemReset(type: number, reason: number): void;
}

const X_A0 = HS.X + 10 * 8;
const TWO32 = 0x1_0000_0000;
/** Bytes one console_write or console_read call moves at most (the caller loops on short counts). */
const DBCN_MAX_CHUNK = 4096;

export class Sbi {
  private readonly dv: DataView;
  private readonly i32: Int32Array;
  private readonly control: HartControl;
  /** The state block of the hart being served. */
  private stateBase = 0;

  constructor(memory: WebAssembly.Memory, private readonly platform: SbiPlatform) {
    this.dv = new DataView(memory.buffer);
    this.i32 = new Int32Array(memory.buffer);
    this.control = new HartControl(memory);
  }

  private argLo(n: number): number {
    return this.dv.getUint32(this.stateBase + X_A0 + n * 8, true);
  }

  private argHi(n: number): number {
    return this.dv.getInt32(this.stateBase + X_A0 + n * 8 + 4, true);
  }

  /** Argument n as a non-negative number, or -1 when it is 2^53 or more (or "negative"). */
  private argNumber(n: number): number {
    const hi = this.argHi(n);
    return hi < 0 || hi >= 0x20_0000 ? -1 : hi * TWO32 + this.argLo(n);
  }

  private setReg(n: number, value: number): void {
    const off = this.stateBase + X_A0 + n * 8;
    const hi = Math.floor(value / TWO32);
    this.dv.setInt32(off, value | 0, true);
    this.dv.setInt32(off + 4, hi, true);
  }

  private ret(error: number, value = 0): void {
    this.setReg(0, error);
    this.setReg(1, value);
  }

  /** Serves the SBI call in hart `hart`'s registers. */
  handle(hart: number): void {
    this.stateBase = hartStateBase(hart);
    const eid = this.argLo(7) >>> 0;
    const fid = this.argLo(6) >>> 0;
    if (this.argHi(7) !== 0) return this.ret(SBI_ERR.NOT_SUPPORTED);
    switch (eid) {
      case EID.BASE:
        return this.baseExtension(fid);
      case EID.TIME:
        if (fid !== 0) return this.ret(SBI_ERR.NOT_SUPPORTED);
        this.platform.setTimer(hart, this.argLo(0), this.argHi(0));
        return this.ret(SBI_ERR.SUCCESS);
      case EID.IPI:
        if (fid !== 0) return this.ret(SBI_ERR.NOT_SUPPORTED);
        return this.ret(this.forEachTarget((target) => this.control.raiseInterrupt(target, MIP_SSIP)));
      case EID.RFENCE:
        return this.rfence(fid);
      case EID.HSM:
        return this.hsm(hart, fid);
      case EID.SRST:
        return this.srst(hart, fid);
      case EID.DBCN:
        return this.dbcn(fid);
      case EID.LEGACY_SET_TIMER:
        this.platform.setTimer(hart, this.argLo(0), this.argHi(0));
        return this.setReg(0, 0);
      case EID.LEGACY_PUTCHAR:
        this.platform.consoleWriteByte(this.argLo(0) & 0xff);
        return this.setReg(0, 0);
      case EID.LEGACY_GETCHAR:
        return this.setReg(0, this.platform.consoleGetChar());
      case EID.LEGACY_SHUTDOWN:
        this.platform.systemReset(SRST_TYPE.SHUTDOWN, SRST_REASON.NONE);
        this.control.kick(hart);
        return this.setReg(0, 0);
      default:
        return eid < 0x10 ? this.setReg(0, SBI_ERR.NOT_SUPPORTED) : this.ret(SBI_ERR.NOT_SUPPORTED);
    }
  }

  private baseExtension(fid: number): void {
    switch (fid) {
      case BASE_FID.GET_SPEC_VERSION:
        return this.ret(SBI_ERR.SUCCESS, SBI_SPEC_VERSION);
      case BASE_FID.GET_IMPL_ID:
        return this.ret(SBI_ERR.SUCCESS, SBI_IMPL_ID);
      case BASE_FID.GET_IMPL_VERSION:
        return this.ret(SBI_ERR.SUCCESS, SBI_IMPL_VERSION);
      case BASE_FID.PROBE_EXTENSION:
        return this.ret(SBI_ERR.SUCCESS, this.argHi(0) === 0 && PROBED.has(this.argLo(0) >>> 0) ? 1 : 0);
      case BASE_FID.GET_MVENDORID:
      case BASE_FID.GET_MARCHID:
      case BASE_FID.GET_MIMPID:
        return this.ret(SBI_ERR.SUCCESS, 0);
      default:
        return this.ret(SBI_ERR.NOT_SUPPORTED);
    }
  }

  /** Runs `action` for every hart in (a0 = hart_mask, a1 = hart_mask_base); returns the SBI error. */
  private forEachTarget(action: (hart: number) => void): number {
    const count = this.platform.hartCount;
    if (this.argLo(1) === -1 >>> 0 && this.argHi(1) === -1) {
      for (let hart = 0; hart < count; hart++) action(hart);
      return SBI_ERR.SUCCESS;
    }
    const maskBase = this.argNumber(1);
    const targets: number[] = [];
    for (let bit = 0; bit < 64; bit++) {
      const set = bit < 32 ? (this.argLo(0) >>> bit) & 1 : (this.argHi(0) >>> (bit - 32)) & 1;
      if (!set) continue;
      const hart = maskBase + bit;
      if (maskBase < 0 || hart >= count) return SBI_ERR.INVALID_PARAM;
      targets.push(hart);
    }
    for (const hart of targets) action(hart);
    return SBI_ERR.SUCCESS;
  }

  private rfence(fid: number): void {
    if (fid !== RFENCE_FID.FENCE_I && fid !== RFENCE_FID.SFENCE_VMA && fid !== RFENCE_FID.SFENCE_VMA_ASID) {
      return this.ret(SBI_ERR.NOT_SUPPORTED);
    }
    this.ret(
      this.forEachTarget((target) => {
        Atomics.store(this.i32, (hartStateBase(target) + CSR_OFF.FLUSH_REQUEST) >> 2, 1);
        this.control.kick(target);
      }),
    );
  }

  private inRam(gpa: number, length: number): boolean {
    const { base, size } = this.platform.ram;
    return gpa >= base && length >= 0 && gpa + length <= base + size;
  }

  private hsm(hart: number, fid: number): void {
    switch (fid) {
      case HSM_FID.HART_START:
        return this.ret(this.hartStart());
      case HSM_FID.HART_STOP:
        if (!this.control.transition(hart, HSM.STARTED, HSM.STOPPED)) return this.ret(SBI_ERR.FAILED);
        this.control.kick(hart);
        return this.ret(SBI_ERR.SUCCESS);
      case HSM_FID.HART_GET_STATUS: {
        const target = this.argNumber(0);
        if (target < 0 || target >= this.platform.hartCount) return this.ret(SBI_ERR.INVALID_PARAM);
        return this.ret(SBI_ERR.SUCCESS, this.control.state(target));
      }
      case HSM_FID.HART_SUSPEND:
        return this.ret(this.hartSuspend(hart));
      default:
        return this.ret(SBI_ERR.NOT_SUPPORTED);
    }
  }

  private hartStart(): number {
    const target = this.argNumber(0);
    if (target < 0 || target >= this.platform.hartCount) return SBI_ERR.INVALID_PARAM;
    if (!this.inRam(this.argNumber(1), 4)) return SBI_ERR.INVALID_ADDRESS;
    if (!this.control.lockStart(target)) return SBI_ERR.ALREADY_AVAILABLE;
    try {
      if (this.control.state(target) !== HSM.STOPPED) return SBI_ERR.ALREADY_AVAILABLE;
      this.control.setStart(target, this.argLo(1), this.argHi(1), this.argLo(2), this.argHi(2));
      this.control.setState(target, HSM.START_PENDING);
    } finally {
      this.control.unlockStart(target);
    }
    this.control.wake(target);
    return SBI_ERR.SUCCESS;
  }

  private hartSuspend(hart: number): number {
    const type = this.argLo(0) | 0;
    const nonRetentive = type === HSM_SUSPEND.NON_RETENTIVE_DEFAULT;
    if (type !== HSM_SUSPEND.RETENTIVE_DEFAULT && !nonRetentive) {
      const platformSpecific = (type & 0x7fff_ffff) >= HSM_SUSPEND.PLATFORM_BASE;
      return platformSpecific ? SBI_ERR.NOT_SUPPORTED : SBI_ERR.INVALID_PARAM;
    }
    if (nonRetentive) {
      if (!this.inRam(this.argNumber(1), 4)) return SBI_ERR.INVALID_ADDRESS;
      this.control.setStart(hart, this.argLo(1), this.argHi(1), this.argLo(2), this.argHi(2));
    }
    this.control.setNonRetentive(hart, nonRetentive);
    this.control.setState(hart, HSM.SUSPENDED);
    this.control.kick(hart);
    return SBI_ERR.SUCCESS;
  }

  private srst(hart: number, fid: number): void {
    if (fid !== 0) return this.ret(SBI_ERR.NOT_SUPPORTED);
    const type = this.argLo(0) >>> 0;
    const reason = this.argLo(1) >>> 0;
    if (type > SRST_TYPE.WARM_REBOOT) return this.ret(type >= 0xf000_0000 ? SBI_ERR.NOT_SUPPORTED : SBI_ERR.INVALID_PARAM);
    if (reason > SRST_REASON.SYSTEM_FAILURE && reason < 0xe000_0000) return this.ret(SBI_ERR.INVALID_PARAM);
    this.platform.systemReset(type, reason);
    this.control.kick(hart);
    this.ret(SBI_ERR.SUCCESS);
  }

  private dbcn(fid: number): void {
    if (fid === DBCN_FID.WRITE_BYTE) {
      this.platform.consoleWriteByte(this.argLo(0) & 0xff);
      return this.ret(SBI_ERR.SUCCESS);
    }
    if (fid !== DBCN_FID.WRITE && fid !== DBCN_FID.READ) return this.ret(SBI_ERR.NOT_SUPPORTED);
    const length = Math.min(this.argNumber(0), DBCN_MAX_CHUNK);
    const gpa = this.argNumber(1);
    if (length < 0 || this.argLo(2) !== 0 || this.argHi(2) !== 0 || !this.inRam(gpa, length)) {
      return this.ret(SBI_ERR.INVALID_PARAM);
    }
    const done = fid === DBCN_FID.WRITE ? this.platform.consoleWrite(gpa, length) : this.platform.consoleRead(gpa, length);
    this.ret(SBI_ERR.SUCCESS, done);
  }
}

/** Extensions probe_extension reports as available. */
const PROBED = new Set<number>([
  EID.BASE, EID.TIME, EID.IPI, EID.RFENCE, EID.HSM, EID.SRST, EID.DBCN,
  EID.LEGACY_SET_TIMER, EID.LEGACY_PUTCHAR, EID.LEGACY_GETCHAR, EID.LEGACY_SHUTDOWN,
]);
