/**
 * Test support for the JIT's own tests: a shared memory laid out per layout.ts,
 * a minimal bare-metal HartServices (physical = virtual, RAM only, TLBs filled
 * on a miss, no CSRs) standing in where a test needs only the JIT, and an
 * assembler wrapper over the riscv64 cross binutils.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { HartServices } from '../../src/emulator/riscv/hart-api.js';
import {
  CODE_PAGE_MAP_BASE, HS, RAM_GPA_BASE, RAM_HOST_BASE, TLB_ENTRIES, TLB_ENTRY_SIZE, TLB_FETCH, TLB_LOAD, TLB_STORE,
  hartStateBase, memoryPagesFor, tlbBase, tlbIndex,
} from '../../src/emulator/riscv/layout.js';
import { requirePeer } from '../helpers/peers.js';
import { TRANSLATED } from '../../src/emulator/riscv/jit/code-cache.js';
import type { JitEngine } from '../../src/emulator/riscv/jit/engine.js';
import { JIT_BUDGET } from '../../src/emulator/riscv/jit/hub.js';

export const RAM_BYTES = 1 << 20;

/** Assembles and links RV64GC source (.text at the start of RAM) into raw bytes. */
export function assemble(source: string): Uint8Array {
  requirePeer('riscv64-linux-gnu-as');
  const dir = mkdtempSync(path.join(tmpdir(), 'tsemu-jit-'));
  try {
    writeFileSync(path.join(dir, 'a.S'), `.option norelax\n${source}\n`);
    execFileSync('riscv64-linux-gnu-as', ['-march=rv64gc_zba_zbb_zbs', '-o', path.join(dir, 'a.o'), path.join(dir, 'a.S')]);
    execFileSync('riscv64-linux-gnu-ld', ['-Ttext=0x80000000', '-e', '0x80000000', '-o', path.join(dir, 'a.elf'), path.join(dir, 'a.o')]);
    execFileSync('riscv64-linux-gnu-objcopy', ['-O', 'binary', '-j', '.text', path.join(dir, 'a.elf'), path.join(dir, 'a.bin')]);
    return new Uint8Array(readFileSync(path.join(dir, 'a.bin')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A bare M-mode hart over RAM only: enough to drive translated blocks and their slow paths. */
export class MiniHart implements HartServices {
  readonly id = 0;
  readonly memory = new WebAssembly.Memory({ initial: memoryPagesFor(RAM_BYTES), maximum: memoryPagesFor(RAM_BYTES), shared: true });
  readonly stateBase = hartStateBase(0);
  readonly view = new DataView(this.memory.buffer);
  readonly mem8 = new Uint8Array(this.memory.buffer);
  slowLoads = 0;
  slowStores = 0;
  fp = true;
  fenceIHook: (() => void) | undefined;
  codeHooks: { invalidatePage(p: number): void } | undefined;

  constructor() {
    this.view.setInt32(this.stateBase + HS.TLB_SET, tlbBase(0), true);
    this.flushTlb();
  }

  flushTlb(): void {
    for (const t of [TLB_LOAD, TLB_STORE, TLB_FETCH]) {
      for (let i = 0; i < TLB_ENTRIES; i++) this.view.setBigInt64(tlbBase(0) + t + i * TLB_ENTRY_SIZE, -1n, true);
    }
  }

  x(r: number): bigint { return this.view.getBigUint64(this.stateBase + HS.X + 8 * r, true); }
  setX(r: number, v: bigint): void { this.view.setBigUint64(this.stateBase + HS.X + 8 * r, BigInt.asUintN(64, v), true); }
  f(r: number): bigint { return this.view.getBigUint64(this.stateBase + HS.F + 8 * r, true); }
  get pc(): bigint { return this.view.getBigUint64(this.stateBase + HS.PC, true); }
  set pc(v: bigint) { this.view.setBigUint64(this.stateBase + HS.PC, v, true); }
  get instret(): bigint { return this.view.getBigUint64(this.stateBase + HS.INSTRET, true); }

  loadProgram(bytes: Uint8Array, at = RAM_GPA_BASE): void {
    this.mem8.set(bytes, RAM_HOST_BASE + at - RAM_GPA_BASE);
    this.pc = BigInt(at);
  }

  /** Host offset of a RAM address, or -1. */
  private host(lo: number, hi: number, size: number): number {
    const pa = lo >>> 0;
    if (hi !== 0 || pa < RAM_GPA_BASE || pa + size > RAM_GPA_BASE + RAM_BYTES) return -1;
    return pa - RAM_GPA_BASE + RAM_HOST_BASE;
  }

  private fill(table: number, lo: number): void {
    const e = tlbBase(0) + table + tlbIndex(lo) * TLB_ENTRY_SIZE;
    this.view.setBigInt64(e, BigInt(lo >>> 12), true);
    this.view.setInt32(e + 8, (RAM_HOST_BASE - RAM_GPA_BASE) | 0, true);
  }

  load(lo: number, hi: number, size: 1 | 2 | 4 | 8): boolean {
    this.slowLoads++;
    const h = this.host(lo, hi, size);
    if (h < 0) return this.raiseException(5, lo, hi);
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(this.mem8[h + i]!);
    this.view.setBigUint64(this.stateBase + HS.SCRATCH0, v, true);
    this.fill(TLB_LOAD, lo);
    return true;
  }

  store(lo: number, hi: number, size: 1 | 2 | 4 | 8): boolean {
    this.slowStores++;
    const h = this.host(lo, hi, size);
    if (h < 0) return this.raiseException(7, lo, hi);
    const v = this.view.getBigUint64(this.stateBase + HS.SCRATCH0, true);
    for (let i = 0; i < size; i++) this.mem8[h + i] = Number((v >> BigInt(8 * i)) & 0xffn);
    const page = (h - RAM_HOST_BASE) >>> 12;
    if (this.mem8[CODE_PAGE_MAP_BASE + page] !== 0) this.codeHooks?.invalidatePage((lo >>> 0) >>> 12);
    else this.fill(TLB_STORE, lo);
    return true;
  }

  dropStorePage(page: number): void {
    for (let i = 0; i < TLB_ENTRIES; i++) {
      const e = tlbBase(0) + TLB_STORE + i * TLB_ENTRY_SIZE;
      const tag = this.view.getBigInt64(e, true);
      if (tag !== -1n && Number(tag) - (RAM_GPA_BASE >>> 12) === page) this.view.setBigInt64(e, -1n, true);
    }
  }

  fetchHost(lo: number, hi: number): number {
    const h = this.host(lo, hi, 2);
    if (h < 0) return this.raiseException(1, lo, hi), -1;
    this.fill(TLB_FETCH, lo);
    return h;
  }

  /** A trap records its cause and jumps to `trapVector`. */
  trapVector = 0x8000_0f00n;
  lastCause = -1;
  raiseException(cause: number, ..._tval: number[]): false {
    this.lastCause = cause;
    this.pc = this.trapVector;
    return false;
  }

  loadReserved(): boolean { throw new Error('not in MiniHart'); }
  storeConditional(): boolean { throw new Error('not in MiniHart'); }
  amo(): boolean { throw new Error('not in MiniHart'); }
  csrAccess(): boolean { throw new Error('not in MiniHart'); }
  ecall(): boolean { throw new Error('not in MiniHart'); }
  ebreak(): false { throw new Error('not in MiniHart'); }
  mret(): boolean { throw new Error('not in MiniHart'); }
  sret(): boolean { throw new Error('not in MiniHart'); }
  wfi(): boolean { throw new Error('not in MiniHart'); }
  sfenceVma(): boolean { throw new Error('not in MiniHart'); }
  fenceI(): void { this.fenceIHook?.(); }
  fpEnabled(): boolean { return this.fp; }
  fpDirty(): void {}
  checkInterrupts(): boolean { return false; }
}

/**
 * A stand-in for the interpreter in JIT-only tests (run with hotThreshold 1 and
 * flushAfter 1, so every block is translated before it is "interpreted"): runs
 * the translated block, and handles the two untranslated instructions the
 * tests use: ecall (stops: sets EXIT_REQUEST) and fence.i.
 */
export class TestStepper {
  halted = false;
  engine: JitEngine | undefined;
  constructor(private readonly hart: MiniHart) {}

  step(): number {
    const pc = Number(this.hart.pc);
    const host = pc - RAM_GPA_BASE + RAM_HOST_BASE;
    const word = this.hart.view.getUint32(host, true);
    if (word === 0x00000073) {
      this.halted = true;
      this.hart.view.setInt32(this.hart.stateBase + HS.EXIT_REQUEST, 1, true);
      return 0;
    }
    if (word === 0x0000100f) {
      this.hart.fenceI();
      this.hart.pc = BigInt(pc + 4);
      return 1;
    }
    const cache = this.engine!.cache;
    const e = cache.entry(host);
    if (e.state !== TRANSLATED) throw new Error(`no translation at ${pc.toString(16)}`);
    const budgetAt = this.hart.stateBase + JIT_BUDGET;
    const before = this.hart.view.getInt32(budgetAt, true);
    cache.enter(e.slot, host);
    const spent = before - this.hart.view.getInt32(budgetAt, true);
    this.hart.view.setBigUint64(this.hart.stateBase + HS.INSTRET, this.hart.instret + BigInt(spent), true);
    return 0; // the block already took its instructions off the budget
  }
}
