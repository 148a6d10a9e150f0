/**
 * Trace events of the microvm machine's start-up on KVM, switched on the way
 * QEMU's `-trace [enable=]PATTERN` switches on its events (a name, or a
 * pattern with `*`; `-trace help` lists them). An enabled event prints one
 * line on stderr when it happens, shaped like QEMU's log backend with
 * timestamps: `PID@SECONDS.MICROSECONDS:name args`, the time being the wall
 * clock at microsecond resolution, so lines from tsemu and from a program that
 * started it compare directly (bench/boot-kvm.ts splits tsemu's start-up with
 * them).
 *
 * The set is enabled per thread: the main thread passes traceEnabled() to a
 * vCPU worker, which calls enableTraceEvents() with it. Lines are written with
 * one synchronous write each, so no thread's line waits for an event loop.
 * Disabled events cost one Set lookup.
 */
import { writeSync } from 'node:fs';

/** The events, in the order a boot passes them, and what each marks. */
export const TRACE_EVENTS: ReadonlyArray<readonly [string, string]> = [
  ['microvm_create', 'the machine is asked for: /dev/kvm is about to be opened'],
  ['microvm_kvm_ready', 'KVM is set up: VM, guest RAM slots, in-kernel irqchip and PIT'],
  ['microvm_loaded', 'the kernel, initrd, command line, boot_params and ACPI tables are in guest RAM'],
  ['microvm_vcpus_ready', 'every vCPU is created with its CPUID, MSRs and boot registers'],
  ['kvm_vcpu_first_run', 'a vCPU thread enters KVM_RUN for the first time: the guest\'s first instruction is next'],
  ['kvm_vcpu_first_exit', 'a vCPU\'s first exit to tsemu (the guest has run)'],
  ['microvm_exit', 'the machine has ended and released KVM'],
];

const NAMES = new Set(TRACE_EVENTS.map(([name]) => name));
let enabled = new Set<string>();

/** The events a pattern names (`*` matches any run of characters). */
function matching(pattern: string): string[] {
  const re = new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return [...NAMES].filter((name) => re.test(name));
}

/** Enables the events the patterns name; throws naming a pattern that names none. */
export function enableTracePatterns(patterns: readonly string[]): void {
  for (const pattern of patterns) {
    const names = matching(pattern);
    if (names.length === 0) throw new Error(`-trace: no trace event matches '${pattern}' (-trace help lists them)`);
    names.forEach((name) => enabled.add(name));
  }
}

/** The enabled events (for a worker thread). */
export function traceEnabled(): string[] {
  return [...enabled];
}

/** Enables exactly `names` on this thread (a worker's copy of the main thread's set). */
export function enableTraceEvents(names: readonly string[]): void {
  enabled = new Set(names.filter((name) => NAMES.has(name)));
}

export function trace(name: string, args = ''): void {
  if (!enabled.has(name)) return;
  const micros = Math.round((performance.timeOrigin + performance.now()) * 1000);
  const seconds = Math.floor(micros / 1e6);
  const fraction = String(micros % 1e6).padStart(6, '0');
  writeSync(2, `${process.pid}@${seconds}.${fraction}:${name}${args ? ` ${args}` : ''}\n`);
}
