/**
 * A machine-less RISC-V CPU for tests, in the shape of Unicorn's API: one
 * hart (hart.ts, so the privileged architecture is the real one) with N bytes
 * of RAM at 0x8000_0000 in a shared WebAssembly.Memory laid out as layout.ts
 * says, no devices (every MMIO access is an access fault), and a chosen
 * engine. Load bytes or an ELF, set and get registers (as bigint: the
 * harness is not a hot path), run until a pc or an instruction limit.
 *
 * Time: mtime (the time CSR) follows the retired-instruction count by
 * default, so runs are deterministic; a test may pass its own clock.
 * Limits: run() stops only at block boundaries, so `until` must be the start
 * of a block (a jump or branch target, or the instruction after a block end);
 * test programs end by jumping to an exit label.
 */
import type { Engine, EngineName } from '../engine.js';
import { Hart, type HartMmio } from '../hart.js';
import { HS, RAM_GPA_BASE, RAM_HOST_BASE, memoryPagesFor } from '../layout.js';
import { Interpreter } from '../interp/interpreter.js';
import { createJitEngine, DEFAULT_TUNING } from '../jit/index.js';
import { parseElf64 } from '../../loader/elf64.js';

export interface TestCpuOptions {
  /** Bytes of RAM at 0x8000_0000 (default 16 MiB). */
  ramBytes?: number;
  engine?: EngineName;
  /** mtime in 10 MHz ticks; default: the retired-instruction count. */
  mtime?: () => number;
}

export type StopReason = 'until' | 'limit';

export interface RunResult {
  reason: StopReason;
  /** Instructions retired by this run. */
  retired: number;
}

const TWO32 = 0x1_0000_0000;

/** No devices: every MMIO access is an access fault. */
const NO_MMIO: HartMmio = { load: () => false, store: () => false, lo: 0, hi: 0 };

/**
 * The engines the harness builds by name. The harness's 'jit' translates every
 * block the first time it is reached (hotness threshold 1, no batching delay),
 * so tests exercise translated code rather than the interpreter fallback; a
 * benchmark may replace the entry with its own tuning.
 */
export const ENGINES: Partial<Record<EngineName, (hart: Hart) => Engine>> = {
  interp: (hart) => new Interpreter(hart),
  jit: (hart) => createJitEngine(hart, { ...DEFAULT_TUNING, hotThreshold: 1, flushAfter: 1 }),
};

export class TestCpu {
  readonly memory: WebAssembly.Memory;
  readonly hart: Hart;
  readonly engine: Engine;
  readonly ramBytes: number;
  private readonly i32: Int32Array;
  private readonly u8: Uint8Array;
  private readonly base: number;

  constructor(options: TestCpuOptions = {}) {
    this.ramBytes = options.ramBytes ?? 16 << 20;
    const pages = memoryPagesFor(this.ramBytes);
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    this.i32 = new Int32Array(this.memory.buffer);
    this.u8 = new Uint8Array(this.memory.buffer);
    this.hart = new Hart({
      memory: this.memory,
      id: 0,
      ramBytes: this.ramBytes,
      readMtime: options.mtime ?? (() => this.instret()),
      mmio: NO_MMIO,
    });
    this.base = this.hart.stateBase;
    this.hart.reset(RAM_GPA_BASE);
    const name = options.engine ?? 'interp';
    const make = ENGINES[name];
    if (!make) throw new Error(`engine '${name}' is not available`);
    this.engine = make(this.hart);
  }

  /** Resets the hart (M-mode, CSRs cleared, TLB empty) with PC at `pc`. */
  reset(pc: bigint = BigInt(RAM_GPA_BASE)): void {
    this.hart.reset(0);
    this.pc = pc;
  }

  private get64(off: number): bigint {
    const w = (this.base + off) >> 2;
    return BigInt.asUintN(64, (BigInt(this.i32[w + 1]!) << 32n) | BigInt(this.i32[w]! >>> 0));
  }

  private set64(off: number, value: bigint): void {
    const w = (this.base + off) >> 2;
    this.i32[w] = Number(BigInt.asIntN(32, value));
    this.i32[w + 1] = Number(BigInt.asIntN(32, value >> 32n));
  }

  get pc(): bigint {
    return this.get64(HS.PC);
  }

  set pc(value: bigint) {
    this.set64(HS.PC, value);
  }

  /** x register r as an unsigned 64-bit value. */
  getX(r: number): bigint {
    return r === 0 ? 0n : this.get64(HS.X + 8 * r);
  }

  setX(r: number, value: bigint): void {
    if (r !== 0) this.set64(HS.X + 8 * r, value);
  }

  /** f register r's raw 64 bits (singles are NaN-boxed). */
  getF(r: number): bigint {
    return this.get64(HS.F + 8 * r);
  }

  setF(r: number, bits: bigint): void {
    this.set64(HS.F + 8 * r, bits);
  }

  /** Reads a CSR as M-mode software would (csrrs with x0); throws if the CSR does not exist. */
  readCsr(csr: number): bigint {
    this.set64(HS.SCRATCH0, 0n);
    if (!this.csrAccess(csr, 1, false)) throw new Error(`CSR 0x${csr.toString(16)} cannot be read`);
    return this.get64(HS.SCRATCH0);
  }

  /** Writes a CSR as M-mode software would (csrrw); throws if the write traps. */
  writeCsr(csr: number, value: bigint): void {
    this.set64(HS.SCRATCH0, value);
    if (!this.csrAccess(csr, 0, true)) throw new Error(`CSR 0x${csr.toString(16)} cannot be written`);
  }

  /** csrAccess without disturbing PC: a trap would move it to the handler. */
  private csrAccess(csr: number, kind: 0 | 1, writes: boolean): boolean {
    const pc = this.pc;
    const ok = this.hart.csrAccess(csr, kind, writes, 0);
    this.pc = pc;
    return ok;
  }

  instret(): number {
    const w = (this.base + HS.INSTRET) >> 2;
    return (this.i32[w]! >>> 0) + (this.i32[w + 1]! >>> 0) * TWO32;
  }

  private hostOf(gpa: number, length: number): number {
    const off = gpa - RAM_GPA_BASE;
    if (off < 0 || length < 0 || off + length > this.ramBytes) {
      throw new RangeError(`guest range 0x${gpa.toString(16)}+${length} is outside RAM`);
    }
    return RAM_HOST_BASE + off;
  }

  writeMemory(gpa: number, bytes: Uint8Array): void {
    this.u8.set(bytes, this.hostOf(gpa, bytes.length));
  }

  readMemory(gpa: number, length: number): Uint8Array {
    const host = this.hostOf(gpa, length);
    return this.u8.slice(host, host + length);
  }

  /** Loads an ELF's segments at their physical addresses and sets PC to its entry; returns the entry. */
  loadElf(file: Uint8Array): number {
    const elf = parseElf64(file);
    for (const seg of elf.segments) {
      const host = this.hostOf(seg.paddr, seg.memSize);
      this.u8.fill(0, host, host + seg.memSize);
      this.u8.set(seg.data, host);
    }
    this.pc = BigInt(elf.entry);
    return elf.entry;
  }

  /**
   * Runs block by block until PC equals `until` (checked before each block,
   * so a program already there does not run) or `maxInsns` instructions
   * have been attempted.
   */
  run(options: { until?: bigint; maxInsns: number }): RunResult {
    const until = options.until === undefined ? undefined : BigInt.asUintN(64, options.until);
    let retired = 0;
    for (let attempts = 0; attempts < options.maxInsns && retired < options.maxInsns; attempts++) {
      if (until !== undefined && this.pc === until) return { reason: 'until', retired };
      retired += this.engine.run(1);
    }
    return { reason: until !== undefined && this.pc === until ? 'until' : 'limit', retired };
  }
}
