/**
 * RISC-V boot benchmark: `tsemu run` against qemu-system-riscv64 (TCG, `-M virt
 * -bios default`) in the same run, on the same kernel, initramfs and command line.
 *
 * Guests: the bundled one (fixtures/images/riscv64) and Debian trixie's
 * (.cache/guests/debian-riscv64, from scripts/guests/fetch-debian-riscv64.sh);
 * see test/guests/riscv-guests.ts. Each boot runs with `tsemu.test=poweroff`, so
 * /init prints its marker line and powers off at once. For each guest the two
 * programs alternate --repeat times; the table shows the best wall time from spawn
 * to the marker and to the program's exit, for QEMU and tsemu, and tsemu/QEMU for
 * both, with the target (tsemu at most 4x QEMU's boot time).
 *
 * QEMU must boot (its failure is an error: the guest is broken). tsemu may not:
 * a run that exits without the marker, exits non-zero or is still running at
 * --deadline seconds is reported under the table with the tail of its console, and
 * the guest's row says FAILED; the benchmark goes on with the next guest.
 *
 * Usage: npx tsx bench/boot-riscv.ts [--guest all|bundled|debian] [--repeat 3] [--smp 1]
 *          [--memory 512M] [--deadline 600] [--bios FILE (both programs; default: QEMU's OpenSBI, tsemu's SBI)]
 * Needs the built CLI (npm run build) and qemu-system-riscv64 on PATH. Not a test.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from '../test/helpers/peers.js';
import {
  type BootOptions, type BootRun, consoleTail, flatKernel, POWEROFF_APPEND, qemuBootArgs, requireGuest, RISCV_GUESTS,
  type RiscvGuest, tsemuBootArgs, watchBoot,
} from '../test/guests/riscv-guests.js';

const QEMU = 'qemu-system-riscv64';
const TARGET_RATIO = 4;

interface Best {
  marker: number;
  exit: number;
}

/** Why a run does not count, or null when it booted to the marker and exited 0. */
function failure(run: BootRun, deadline: number): string | null {
  if (run.exitSeconds === null) return `still running after ${deadline} s (killed)${run.markerSeconds === null ? ', no marker' : ''}`;
  if (run.markerSeconds === null) return `exited ${run.code ?? 'by a signal'} without the marker`;
  if (run.code !== 0) return `printed the marker but exited ${run.code ?? 'by a signal'}`;
  return null;
}

function better(best: Best | null, run: BootRun): Best {
  const marker = run.markerSeconds!;
  const exit = run.exitSeconds!;
  return best === null ? { marker, exit } : { marker: Math.min(best.marker, marker), exit: Math.min(best.exit, exit) };
}

interface GuestResult {
  qemu: Best;
  tsemu: Best | null;
  tsemuFailure: string | null;
}

async function benchGuest(guest: RiscvGuest, dir: string, opts: Omit<BootOptions, 'kernel' | 'initrd'>, repeat: number, deadline: number): Promise<GuestResult> {
  requireGuest(guest);
  const qemuKernel = await flatKernel(guest, dir);
  const qemuArgs = qemuBootArgs({ ...opts, kernel: qemuKernel, initrd: guest.initrd });
  const tsemuArgs = tsemuBootArgs({ ...opts, kernel: guest.kernel, initrd: guest.initrd });
  let qemu: Best | null = null;
  let tsemu: Best | null = null;
  let tsemuFailure: string | null = null;
  for (let i = 0; i < repeat; i++) {
    const q = await watchBoot(QEMU, qemuArgs, { deadlineSeconds: deadline });
    const qFail = failure(q, deadline);
    if (qFail !== null) throw new Error(`${guest.name}: ${QEMU} ${qFail}\n${consoleTail(q)}`);
    qemu = better(qemu, q);
    if (tsemuFailure !== null) continue;
    const t = await watchBoot(process.execPath, tsemuArgs, { deadlineSeconds: deadline });
    const tFail = failure(t, deadline);
    if (tFail === null) tsemu = better(tsemu, t);
    else tsemuFailure = `tsemu run (${guest.name} guest) ${tFail}; console tail:\n${consoleTail(t, 15)}`;
  }
  return { qemu: qemu!, tsemu: tsemuFailure === null ? tsemu : null, tsemuFailure };
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      guest: { type: 'string', default: 'all' },
      repeat: { type: 'string', default: '3' },
      smp: { type: 'string', default: '1' },
      memory: { type: 'string', default: '512M' },
      deadline: { type: 'string', default: '600' },
      bios: { type: 'string' },
    },
  });
  const repeat = Number(values.repeat);
  const smp = Number(values.smp);
  const deadline = Number(values.deadline);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error('--repeat must be a positive integer');
  if (!Number.isInteger(smp) || smp < 1) throw new Error('--smp must be a positive integer');
  if (!(deadline > 0)) throw new Error('--deadline must be a positive number of seconds');
  const guests = values.guest === 'all' ? RISCV_GUESTS : RISCV_GUESTS.filter((g) => g.name === values.guest);
  if (guests.length === 0) throw new Error(`--guest must be all, ${RISCV_GUESTS.map((g) => g.name).join(' or ')}`);
  if (!existsSync(path.join(ROOT, 'dist/cli.js'))) throw new Error('the CLI is not built: run `npm run build` first');

  const opts = { append: POWEROFF_APPEND, smp, memory: values.memory!, bios: values.bios };
  console.log(`boot to marker and poweroff, -smp ${smp} -m ${opts.memory}, best of ${repeat}; append "${opts.append}"\n`);
  const dir = await mkdtemp(path.join(tmpdir(), 'tsemu-bench-'));
  try {
    const rows: string[][] = [
      ['guest', 'qemu marker s', 'qemu off s', 'tsemu marker s', 'tsemu off s', 'marker ratio', 'off ratio', 'target', ''],
    ];
    const failures: string[] = [];
    for (const guest of guests) {
      const r = await benchGuest(guest, dir, opts, repeat, deadline);
      const q = [r.qemu.marker.toFixed(2), r.qemu.exit.toFixed(2)];
      const target = `<= ${TARGET_RATIO.toFixed(2)}`;
      if (r.tsemu === null) {
        failures.push(r.tsemuFailure!);
        rows.push([guest.name, ...q, '-', '-', '-', '-', target, 'FAILED']);
        continue;
      }
      const offRatio = r.tsemu.exit / r.qemu.exit;
      rows.push([
        guest.name, ...q, r.tsemu.marker.toFixed(2), r.tsemu.exit.toFixed(2), (r.tsemu.marker / r.qemu.marker).toFixed(2),
        offRatio.toFixed(2), target, offRatio <= TARGET_RATIO ? 'ok' : 'MISSED',
      ]);
    }
    const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => row[col]!.length)));
    for (const row of rows) console.log(row.map((cell, col) => pad(cell, widths[col]!)).join('  ').trimEnd());
    for (const f of failures) console.log(`\n${f}`);
    if (failures.length > 0) process.exitCode = 1;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  console.error(`boot-riscv bench: ${e.message}`);
  process.exitCode = 1;
});
