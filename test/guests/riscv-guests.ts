/**
 * The RISC-V test guests and a boot watcher, shared by the guest boot tests and
 * bench/boot-riscv.ts.
 *
 * Guests: the bundled one (fixtures/images/riscv64, committed, made by
 * scripts/guests/build-bundled-riscv64.sh) and Debian trixie's (fetched into
 * .cache/guests/debian-riscv64 by scripts/guests/fetch-debian-riscv64.sh, which
 * .ci/run runs). Both initramfs /init scripts print BOOT_MARKER followed by the
 * kernel release and the CPU count, then power off at once when the command line
 * has `tsemu.test=poweroff`, or else serve a shell on the console.
 *
 * watchBoot spawns a machine program (qemu-system-riscv64 or tsemu run), collects
 * its console (stdout + stderr), and reports the seconds from spawn to the marker
 * line and to the process's exit. Input can be typed once the marker shows. A
 * machine still running at the deadline is killed (SIGKILL) and reported as such:
 * the deadline is only a bound on a wait for a marker, never a speed requirement.
 * assertCleanPoweroff checks a run that was to power off right after the marker.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { ROOT } from '../helpers/peers.js';

export const BOOT_MARKER = 'TSEMU-BOOT-OK';
/** Kernel command line of a boot that powers off right after the marker. */
export const POWEROFF_APPEND = 'console=ttyS0 tsemu.test=poweroff';

export interface RiscvGuest {
  name: string;
  /** Kernel file as stored (flat Image, possibly gzipped). */
  kernel: string;
  initrd: string;
  /** How to make the files when they are missing. */
  makeWith: string;
}

export const BUNDLED_GUEST: RiscvGuest = {
  name: 'bundled',
  kernel: path.join(ROOT, 'fixtures/images/riscv64/Image.gz'),
  initrd: path.join(ROOT, 'fixtures/images/riscv64/initramfs.cpio.gz'),
  makeWith: 'scripts/guests/build-bundled-riscv64.sh',
};

export const DEBIAN_GUEST: RiscvGuest = {
  name: 'debian',
  kernel: path.join(ROOT, '.cache/guests/debian-riscv64/Image'),
  initrd: path.join(ROOT, '.cache/guests/debian-riscv64/initramfs.cpio.gz'),
  makeWith: 'scripts/guests/fetch-debian-riscv64.sh',
};

export const RISCV_GUESTS: readonly RiscvGuest[] = [BUNDLED_GUEST, DEBIAN_GUEST];

/** Debian's OpenSBI (package opensbi) for the virt machine, as --bios / -bios takes it. */
export const DEBIAN_OPENSBI = '/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin';

/** Throws (fails the test) when the guest's files are missing, naming the script that makes them. */
export function requireGuest(guest: RiscvGuest): void {
  for (const file of [guest.kernel, guest.initrd]) {
    if (!existsSync(file)) throw new Error(`${guest.name} guest: ${file} is missing: run ${guest.makeWith}`);
  }
}

/**
 * The guest's kernel as a flat file: QEMU's riscv -kernel does not unpack gzip, so a
 * gzipped kernel is unpacked into `dir` first.
 */
export async function flatKernel(guest: RiscvGuest, dir: string): Promise<string> {
  const bytes = await readFile(guest.kernel);
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return guest.kernel;
  const flat = path.join(dir, `${guest.name}-Image`);
  await writeFile(flat, gunzipSync(bytes));
  return flat;
}

export interface BootOptions {
  kernel: string;
  initrd: string;
  append: string;
  smp?: number;
  memory?: string;
  /** SBI firmware file; by default QEMU runs its built-in OpenSBI (`-bios default`), tsemu its own SBI. */
  bios?: string;
}

/** qemu-system-riscv64 arguments for a direct kernel boot. */
export function qemuBootArgs(o: BootOptions): string[] {
  return [
    '-M', 'virt', '-m', o.memory ?? '512M', '-smp', String(o.smp ?? 1), '-bios', o.bios ?? 'default',
    '-nographic', '-no-reboot', '-kernel', o.kernel, '-initrd', o.initrd, '-append', o.append,
  ];
}

/** `tsemu run` arguments (after the node binary) for the same boot. */
export function tsemuBootArgs(o: BootOptions): string[] {
  return [
    path.join(ROOT, 'bin/tsemu.js'), 'run', '-M', 'virt', '-m', o.memory ?? '512M', '-smp', String(o.smp ?? 1),
    '--kernel', o.kernel, '--initrd', o.initrd, '--append', o.append, '--serial', 'stdio', '--no-reboot',
    ...(o.bios === undefined ? [] : ['--bios', o.bios]),
  ];
}

export interface BootRun {
  /** Seconds from spawn to the marker line, or null when it never showed. */
  markerSeconds: number | null;
  /** Seconds from spawn to the process's exit, or null when killed at the deadline. */
  exitSeconds: number | null;
  /** Exit code (null when killed by a signal). */
  code: number | null;
  /** The marker line, "TSEMU-BOOT-OK <release> <cpus>" ('' when missed). */
  markerLine: string;
  /** Everything the machine printed. */
  console: string;
}

export interface WatchOptions {
  /** Kill the machine if it has not exited this many seconds after spawn. */
  deadlineSeconds: number;
  /** Typed on the machine's stdin once the marker shows. */
  typeAfterMarker?: string;
}

export function watchBoot(program: string, args: readonly string[], opts: WatchOptions): Promise<BootRun> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const elapsed = (): number => Number(process.hrtime.bigint() - start) / 1e9;
    const child = spawn(program, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let text = '';
    let markerSeconds: number | null = null;
    const onData = (d: string): void => {
      const from = Math.max(0, text.length - BOOT_MARKER.length);
      text += d;
      if (markerSeconds !== null) return;
      const at = text.indexOf(BOOT_MARKER, from);
      if (at < 0) return;
      markerSeconds = elapsed();
      if (opts.typeAfterMarker !== undefined) child.stdin.write(opts.typeAfterMarker);
    };
    child.stdout.setEncoding('utf8').on('data', onData);
    child.stderr.setEncoding('utf8').on('data', onData);
    child.stdin.on('error', () => {});
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.deadlineSeconds * 1000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const exitSeconds = signal === 'SIGKILL' ? null : elapsed();
      resolve({ markerSeconds, exitSeconds, code, markerLine: markerLineIn(text), console: text });
    });
  });
}

const MARKER_LINE = new RegExp(`${BOOT_MARKER}[^\\r\\n[]*`);
/** A kernel message as the console prints it: "[    1.234567] text" and its line end. */
const KERNEL_MESSAGE = /\[ *\d+\.\d+\][^\n]*\n/g;

/**
 * The marker line as /init printed it. The kernel writes its messages to the UART
 * directly, so one can land inside the line (/init's text still queued in the tty
 * driver) or end it (a poweroff right after the marker prints "[ t] reboot: Power
 * down" before the UART sends /init's newline): kernel messages are taken out first,
 * and the line stops where one without a line end begins.
 */
function markerLineIn(text: string): string {
  return MARKER_LINE.exec(text.replace(KERNEL_MESSAGE, ''))?.[0].trim() ?? '';
}

/** The last `lines` lines of a console log, for failure messages. */
export function consoleTail(run: BootRun, lines = 40): string {
  return run.console.replace(/\r/g, '').split('\n').slice(-lines).join('\n');
}

/**
 * Asserts a boot with `tsemu.test=poweroff` went right: the marker line names `smp`
 * CPUs, the kernel powered off, and the machine program exited 0 before the deadline.
 * Failure messages end with the console's tail.
 */
export function assertCleanPoweroff(run: BootRun, smp: number): void {
  const log = `\n--- console (tail) ---\n${consoleTail(run)}`;
  assert.notEqual(run.markerSeconds, null, `no marker line${log}`);
  assert.match(run.markerLine, new RegExp(` ${smp}$`), `marker line '${run.markerLine}' should end with the CPU count ${smp}${log}`);
  assert.notEqual(run.exitSeconds, null, `killed at the deadline${log}`);
  assert.match(run.console, /reboot: Power down/, `no kernel poweroff message${log}`);
  assert.equal(run.code, 0, `exit code${log}`);
}
