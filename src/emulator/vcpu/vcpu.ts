/**
 * One virtual CPU: a hart, its engine and the loop that runs it, on its own
 * worker thread (vcpu-worker.ts) over the machine's shared memory.
 *
 * Theory of operation. The loop acts on the hart's HSM state (hart-control.ts)
 * until the machine's RUN word drops:
 *
 *   START_PENDING  begin at the recorded start address (boot-state.ts: S-mode
 *                  under tsemu's SBI, M-mode firmware entry otherwise) → STARTED
 *   STARTED        run the engine for a slice of RUN_SLICE instructions, then
 *                  bring the timer bit up to date (the CLINT's mtimecmp);
 *                  after a wfi, sleep instead until an interrupt is pending
 *                  and enabled in mie (or the timer deadline passes)
 *   SUSPENDED      (SBI hart_suspend) sleep like wfi; on wake-up resume where the
 *                  call left off, or at the resume address when non-retentive
 *   STOPPED        sleep until another hart's hart_start
 *
 * Sleeping is Atomics.wait on the hart's WAKE word, which every waker bumps
 * (interrupts raised through HartControl, hart_start, mtimecmp writes, machine
 * stop); sleeps are also capped at MAX_SLEEP_MS so a missed wake costs latency,
 * never a hang.
 *
 * Devices: CLINT and PLIC accesses are served on this thread (their state is
 * in shared memory; the PLIC's wires are driven by the main thread's devices); side-effect-free reads of a shadowed device (the UART's status
 * registers, a virtio-mmio slot's InterruptStatus) are answered from its
 * shadow, a virtio-mmio slot's InterruptACK is served here too (it clears
 * the shared status and drives the slot's PLIC wire), and its stores that
 * change no shadowed answer (console bytes, virtio queue notifications) are
 * posted without waiting (mmio-shadow.ts);
 * every other MMIO access, and the SBI's console and reset calls, cross to
 * the main thread through the hart's mailbox slot (mailbox.ts) and wait for
 * the answer. An access no device decodes becomes
 * an access fault in the guest.
 *
 * With TSEMU_JIT_STATS=1 in the environment each vCPU prints its engine's
 * counters (instructions, its thread's CPU time, dispatches, compile times)
 * to stderr when it ends.
 */
import { readFileSync, writeSync } from 'node:fs';
import type { Engine, EngineName } from '../riscv/engine.js';
import { Hart, type HartMmio, type HartOptions } from '../riscv/hart.js';
import type { MemSize } from '../riscv/hart-api.js';
import { Interpreter } from '../riscv/interp/interpreter.js';
import { createJitEngine, DEFAULT_TUNING } from '../riscv/jit/index.js';
import { MIP_MTIP, MIP_STIP } from '../riscv/priv/csr-defs.js';
import { Sbi, type SbiPlatform } from '../riscv/sbi/sbi.js';
import { RAM_GPA_BASE, TIMEBASE_HZ } from '../riscv/layout.js';
import { MmioBus } from '../bus/mmio-bus.js';
import { Clint } from '../devices/aclint.js';
import { Plic } from '../devices/plic.js';
import { enterFirmware, enterSupervisor } from './boot-state.js';
import { HSM, HartControl } from './hart-control.js';
import { MailboxClient, MailboxOp, STATUS_OK } from './mailbox.js';
import { ShadowReader, type ShadowWindow } from './mmio-shadow.js';

export interface VcpuConfig {
  memory: WebAssembly.Memory;
  hart: number;
  harts: number;
  ramBytes: number;
  engine: EngineName;
  /** The CLINT's guest-physical window (served on this thread). */
  clint: { base: number; size: number };
  /** The PLIC: its window, sources and priorities, and where its state is in `memory` (served on this thread). */
  plic: { window: { base: number; size: number }; ndev: number; maxPriority: number; state: number };
  /** Device windows with a register shadow (mmio-shadow.ts): some reads are answered here, some byte stores posted. */
  shadows?: readonly ShadowWindow[];
  /** Firmware boot (--bios): harts start in M-mode and no SBI is served here; the timer raises MTIP. */
  firmware?: { entry: number; fdt: number; info: number };
}

/** Instructions per engine slice between timer checks. */
const RUN_SLICE = 200_000;
const MAX_SLEEP_MS = 500;
const TICKS_PER_MS = TIMEBASE_HZ / 1000;

/** MMIO for one vCPU: the CLINT, the PLIC and the shadows locally, everything else through the mailbox. */
class VcpuMmio implements HartMmio {
  lo = 0;
  hi = 0;

  constructor(
    private readonly local: MmioBus,
    private readonly mailbox: MailboxClient,
    private readonly shadow: ShadowReader,
  ) {}

  load(gpa: number, size: MemSize): boolean {
    if (this.local.load(gpa, size)) {
      this.lo = this.local.lo;
      this.hi = this.local.hi;
      return true;
    }
    if (this.shadow.load(gpa, size)) {
      this.lo = this.shadow.value;
      this.hi = 0;
      return true;
    }
    if (this.mailbox.call(MailboxOp.MMIO_LOAD, gpa, size, 0, 0) !== STATUS_OK) return false;
    this.lo = this.mailbox.resultLo;
    this.hi = this.mailbox.resultHi;
    return true;
  }

  store(gpa: number, size: MemSize, lo: number, hi: number): boolean {
    if (this.local.store(gpa, size, lo, hi)) return true;
    if (this.shadow.acknowledge(gpa, size, lo)) return true;
    if (this.shadow.keeps(gpa, size)) return this.mailbox.post(gpa, size, lo) === STATUS_OK;
    return this.mailbox.call(MailboxOp.MMIO_STORE, gpa, size, lo, hi) === STATUS_OK;
  }
}

/** CPU time of the calling thread (Linux /proc/thread-self), or undefined where that does not exist. */
function threadCpuMs(): number | undefined {
  try {
    const fields = readFileSync('/proc/thread-self/stat', 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, in USER_HZ (100) ticks
  } catch {
    return undefined;
  }
}

function createEngine(name: EngineName, hart: Hart): Engine {
  return name === 'jit' ? createJitEngine(hart, { ...DEFAULT_TUNING, background: true }) : new Interpreter(hart);
}

export class Vcpu {
  private readonly control: HartControl;
  private readonly clint: Clint;
  private readonly hart: Hart;
  private readonly engine: Engine;
  private readonly id: number;

  constructor(private readonly config: VcpuConfig) {
    const { memory, hart: id, harts, ramBytes } = config;
    this.id = id;
    this.control = new HartControl(memory);
    this.clint = new Clint({ memory, harts, sink: this.control, timerBit: config.firmware ? MIP_MTIP : MIP_STIP });
    const mailbox = new MailboxClient(memory, id);
    const local = new MmioBus();
    local.map(config.clint.base, config.clint.size, this.clint, 'clint');
    const { plic } = config;
    const control = this.control;
    const sharedPlic = new Plic({
      harts,
      ndev: plic.ndev,
      maxPriority: plic.maxPriority,
      output: (hart, mode, level) => control.externalInterrupt(hart, mode, level),
      state: { memory, base: plic.state },
    });
    local.map(plic.window.base, plic.window.size, sharedPlic, 'plic');
    const options: HartOptions = {
      memory,
      id,
      ramBytes,
      readMtime: () => this.clint.readMtime(),
      mmio: new VcpuMmio(local, mailbox, new ShadowReader(memory, config.shadows ?? [], (source) => sharedPlic.irqLine(source))),
    };
    if (!config.firmware) {
      const sbi = new Sbi(memory, this.sbiPlatform(mailbox));
      options.sbi = (h) => {
        sbi.handle(h.id);
        return true;
      };
    }
    this.hart = new Hart(options);
    this.engine = createEngine(config.engine, this.hart);
  }

  private sbiPlatform(mailbox: MailboxClient): SbiPlatform {
    const clint = this.clint;
    const call = (op: number, arg: number, size: number, value: number): number =>
      mailbox.call(op, arg, size, value, 0) === STATUS_OK ? mailbox.resultLo : -1;
    return {
      hartCount: this.config.harts,
      ram: { base: RAM_GPA_BASE, size: this.config.ramBytes },
      setTimer(hart, lo, hi) {
        clint.setTimecmp(hart, lo, hi);
        clint.updateTimer(hart);
      },
      consoleWrite: (gpa, length) => Math.max(0, call(MailboxOp.CONSOLE_WRITE, gpa, length, 0)),
      consoleRead: (gpa, length) => Math.max(0, call(MailboxOp.CONSOLE_READ, gpa, length, 0)),
      consoleWriteByte: (byte) => void call(MailboxOp.CONSOLE_PUTCHAR, 0, 1, byte),
      consoleGetChar: () => call(MailboxOp.CONSOLE_GETCHAR, 0, 1, 0),
      systemReset: (type, reason) => void call(MailboxOp.SYSTEM_RESET, type, 4, reason),
    };
  }

  /** Runs until the machine stops; returns the instructions retired. */
  run(): number {
    const control = this.control;
    let retired = 0;
    while (control.running()) {
      switch (control.state(this.id)) {
        case HSM.STARTED:
          if (this.hart.waitingForInterrupt) {
            if (!this.sleepUntilWakeable()) break;
            this.hart.waitingForInterrupt = false;
          }
          retired += this.engine.run(RUN_SLICE);
          this.clint.updateTimer(this.id);
          break;
        case HSM.START_PENDING:
          this.begin();
          control.setState(this.id, HSM.STARTED);
          break;
        case HSM.SUSPENDED:
          if (this.sleepUntilWakeable()) this.resume();
          break;
        default:
          this.sleepWhile(HSM.STOPPED);
      }
    }
    if (process.env.TSEMU_JIT_STATS === '1') {
      writeSync(2, `tsemu: vCPU ${this.id}: ${JSON.stringify({ retired, threadCpuMs: threadCpuMs(), ...this.engine.stats?.() })}\n`);
    }
    return retired;
  }

  private begin(): void {
    const [pcLo, pcHi, opaqueLo, opaqueHi] = this.control.start(this.id);
    const fw = this.config.firmware;
    if (fw) enterFirmware(this.hart, fw.entry, fw.fdt, fw.info);
    else enterSupervisor(this.hart, pcLo, pcHi, opaqueLo, opaqueHi);
    this.hart.waitingForInterrupt = false;
  }

  private resume(): void {
    if (this.control.nonRetentive(this.id)) {
      const [pcLo, pcHi, opaqueLo, opaqueHi] = this.control.start(this.id);
      enterSupervisor(this.hart, pcLo, pcHi, opaqueLo, opaqueHi);
    }
    this.control.setState(this.id, HSM.STARTED);
  }

  /** Sleeps until an interrupt is pending and enabled (true), or a wake or the cap ends the sleep (false). */
  private sleepUntilWakeable(): boolean {
    const seq = this.control.wakeSeq(this.id);
    const ticksLeft = this.clint.updateTimer(this.id);
    if (this.hart.wakeable()) return true;
    if (!this.control.running()) return false;
    this.control.sleep(this.id, seq, Math.min(Math.max(ticksLeft / TICKS_PER_MS, 0), MAX_SLEEP_MS));
    this.clint.updateTimer(this.id);
    return this.hart.wakeable();
  }

  private sleepWhile(state: number): void {
    const seq = this.control.wakeSeq(this.id);
    if (this.control.state(this.id) === state && this.control.running()) this.control.sleep(this.id, seq, MAX_SLEEP_MS);
  }
}
