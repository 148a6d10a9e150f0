/**
 * KVM boot benchmark: the project's x86 test guest (fixtures/x86-guest, built here
 * with the host's gcc) on `tsemu run -M microvm` and on qemu-system-x86_64 -M
 * microvm -accel kvm in the same run, alternating, --repeat times each.
 *
 * For both programs: the wall time from spawn to the guest's first console line
 * ("tsemu x86 test guest", printed by its first instructions that reach the UART),
 * to its marker line and to the program's exit after the guest's ACPI poweroff.
 * The guest's own work between them (the timer and UART interrupts, a 200-million
 * round user-mode loop, starting the other CPUs) runs at the same native speed
 * under both, so the differences are the VMMs'. For tsemu, its start-up is split
 * with its -trace events (src/emulator/accel/kvm/trace.ts): Node and the CLI
 * (spawn to microvm_create), KVM setup, loading, vCPU setup, the vCPU thread's
 * start (to the first KVM_RUN) and the guest's first exit. The table shows the
 * median of the runs. Firecracker's specification states at most 125 ms from its
 * InstanceStart API call to the guest's /sbin/init: the far anchor, printed
 * beside tsemu's spawn-to-first-instruction time (different guests and
 * different end points: an order of magnitude, not a ratio).
 *
 * QEMU runs with `-M microvm,rtc=on` (its microvm leaves the RTC off under ACPI;
 * the guest reads the date and, where the firmware's E820 does not answer, its
 * memory size there) and enters the guest through its firmware and the image's
 * real-mode entry. Where QEMU fails or is still running at --deadline, its
 * message and console tail are printed and its columns stay empty; tsemu failing
 * is an error.
 *
 * Usage: npx tsx bench/boot-kvm.ts [--repeat 5] [--smp 1] [--memory 128M] [--deadline 60]
 * Needs the built CLI (npm run build), /dev/kvm, gcc/binutils and
 * qemu-system-x86_64 on PATH. Not a test.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, requirePeer } from '../test/helpers/peers.js';
import { buildX86Guest } from '../test/kvm/x86-guest.js';

const QEMU = 'qemu-system-x86_64';
const FIRST_LINE = 'tsemu x86 test guest';
const MARKER = 'TSEMU-X86-GUEST-OK';
const FIRECRACKER_MS = 125;
/** tsemu's start-up phases: [label, trace event that ends it]; each starts where the previous ended (the first at spawn). */
const PHASES: ReadonlyArray<readonly [string, string]> = [
  ['Node + CLI start, read the kernel', 'microvm_create'],
  ['KVM setup (VM, RAM, irqchip, PIT)', 'microvm_kvm_ready'],
  ['load (kernel, boot_params, ACPI)', 'microvm_loaded'],
  ['vCPU setup (CPUID, MSRs, registers)', 'microvm_vcpus_ready'],
  ['vCPU thread start → first KVM_RUN', 'kvm_vcpu_first_run cpu 0'],
  ['guest runs → first exit', 'kvm_vcpu_first_exit cpu 0'],
];

interface Run {
  /** Milliseconds from spawn; null where it never happened. */
  firstLine: number | null;
  marker: number | null;
  exit: number | null;
  code: number | null;
  /** Milliseconds from spawn of each trace event seen (name plus its "cpu N"). */
  events: Map<string, number>;
  output: string;
}

const now = (): number => performance.timeOrigin + performance.now();

function watch(program: string, args: readonly string[], deadlineSeconds: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const start = now();
    const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const run: Run = { firstLine: null, marker: null, exit: null, code: null, events: new Map(), output: '' };
    const onData = (d: string): void => {
      output += d;
      if (run.firstLine === null && output.includes(FIRST_LINE)) run.firstLine = now() - start;
      if (run.marker === null && output.includes(MARKER)) run.marker = now() - start;
    };
    child.stdout.setEncoding('utf8').on('data', onData);
    child.stderr.setEncoding('utf8').on('data', onData);
    const timer = setTimeout(() => child.kill('SIGKILL'), deadlineSeconds * 1000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal !== 'SIGKILL') run.exit = now() - start;
      run.code = code;
      run.output = output;
      for (const m of output.matchAll(/^\d+@(\d+\.\d{6}):(\w+)( cpu \d+)?/gm)) {
        run.events.set(m[2]! + (m[3] ?? ''), Number(m[1]) * 1000 - start);
      }
      resolve(run);
    });
  });
}

/** Why a run does not count, or null when it reached the marker and exited 0. */
function failure(run: Run, deadline: number): string | null {
  if (run.exit === null) return `still running after ${deadline} s (killed)${run.marker === null ? ', no marker' : ''}`;
  if (run.marker === null) return `exited ${run.code ?? 'by a signal'} without the marker`;
  if (run.code !== 0) return `printed the marker but exited ${run.code ?? 'by a signal'}`;
  return null;
}

function tail(run: Run, lines = 15): string {
  return run.output.replace(/\r/g, '').trimEnd().split('\n').slice(-lines).join('\n');
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const ms = (value: number): string => value.toFixed(1);

function table(rows: string[][]): void {
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => row[col]!.length)));
  for (const row of rows) console.log(row.map((cell, col) => (col === 0 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!))).join('  '));
}

function positive(option: string, text: string, integer: boolean): number {
  const n = Number(text);
  if (!(n > 0) || (integer && !Number.isInteger(n))) throw new Error(`--${option} must be a positive ${integer ? 'integer' : 'number'}`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      repeat: { type: 'string', default: '5' },
      smp: { type: 'string', default: '1' },
      memory: { type: 'string', default: '128M' },
      deadline: { type: 'string', default: '60' },
    },
  });
  const repeat = positive('repeat', values.repeat!, true);
  const smp = positive('smp', values.smp!, true);
  const deadline = positive('deadline', values.deadline!, false);
  if (!existsSync(path.join(ROOT, 'dist/bundle/cli.cjs'))) throw new Error('the CLI is not built: run `npm run build` first');
  requirePeer(QEMU);

  const guest = await buildX86Guest();
  try {
    const common = ['-m', values.memory!, '-smp', String(smp), '-kernel', guest.bzImage, '-append', 'console=ttyS0'];
    const tsemuArgs = [path.join(ROOT, 'bin/tsemu.js'), 'run', '-M', 'microvm', ...common, '-no-reboot', '-trace', '*'];
    const qemuArgs = ['-M', 'microvm,rtc=on', '-accel', 'kvm', ...common, '-nographic', '-no-reboot'];
    const tsemuRuns: Run[] = [];
    const qemuRuns: Run[] = [];
    let qemuFailure: string | null = null;
    for (let i = 0; i < repeat; i++) {
      const t = await watch(process.execPath, tsemuArgs, deadline);
      const tFail = failure(t, deadline);
      if (tFail !== null) throw new Error(`tsemu run ${tFail}; console tail:\n${tail(t)}`);
      tsemuRuns.push(t);
      if (qemuFailure !== null) continue;
      const q = await watch(QEMU, qemuArgs, deadline);
      const qFail = failure(q, deadline);
      if (qFail === null) qemuRuns.push(q);
      else qemuFailure = `${QEMU} ${qFail}; its output (tail):\n${tail(q)}`;
    }

    console.log(`x86 test guest, -smp ${smp} -m ${values.memory}, median of ${repeat} (ms from spawn)\n`);
    const column = (runs: Run[], pick: (r: Run) => number | null): string =>
      runs.length === 0 ? '-' : ms(median(runs.map((r) => pick(r)!)));
    const rows = [['', 'QEMU', 'tsemu', 'tsemu / QEMU']];
    for (const [label, pick] of [
      ['first console line', (r: Run) => r.firstLine],
      ['marker', (r: Run) => r.marker],
      ['exit after poweroff', (r: Run) => r.exit],
    ] as const) {
      const q = qemuRuns.length === 0 ? null : median(qemuRuns.map((r) => pick(r)!));
      const t = median(tsemuRuns.map((r) => pick(r)!));
      rows.push([label, column(qemuRuns, pick), ms(t), q === null ? '-' : (t / q).toFixed(2)]);
    }
    table(rows);

    console.log('\ntsemu start-up, from its -trace events (median ms)\n');
    const phaseRows = [['phase', 'ms', 'ends at']];
    const at = (r: Run, event: string): number => {
      const t = r.events.get(event);
      if (t === undefined) throw new Error(`tsemu printed no ${event} trace event`);
      return t;
    };
    PHASES.forEach(([label, event], i) => {
      const durations = tsemuRuns.map((r) => at(r, event) - (i === 0 ? 0 : at(r, PHASES[i - 1]![1])));
      phaseRows.push([label, ms(median(durations)), ms(median(tsemuRuns.map((r) => at(r, event))))]);
    });
    table(phaseRows);
    const firstRun = median(tsemuRuns.map((r) => at(r, 'kvm_vcpu_first_run cpu 0')));
    console.log(`\nfar anchor: Firecracker's specification, at most ${FIRECRACKER_MS} ms from InstanceStart to the guest's /sbin/init;`);
    console.log(`tsemu: ${ms(firstRun)} ms from spawn to the guest's first instruction (${(firstRun / FIRECRACKER_MS).toFixed(2)} x ${FIRECRACKER_MS} ms)`);
    if (qemuFailure !== null) console.log(`\nQEMU did not run the guest on this host: ${qemuFailure}`);
  } finally {
    await guest.cleanup();
  }
}

main().catch((e: Error) => {
  console.error(`boot-kvm bench: ${e.message}`);
  process.exitCode = 1;
});
