/**
 * What every machine shares around one boot: how a boot ends, the latch that
 * ends it once, the reboot loop, and the flat view of guest RAM the loaders
 * write through.
 *
 * Theory of operation. A machine boot ends exactly once: endOnce() gives the
 * `end` callback its devices and vCPU threads call, and the `ending` promise
 * that resolves with the first reason (later calls are ignored). runMachine()
 * creates and starts a boot, waits for its exit, and boots again with a fresh
 * machine after each guest reboot unless noReboot. flatGuestRam() maps a
 * contiguous guest-physical RAM range onto a host byte array; accesses that
 * fall outside it throw GuestMemoryError; view() lends devices a live window
 * onto it (virtio/guest-ram.ts).
 */
import { GuestMemoryError } from '../bus/interfaces.js';
import type { GuestRam } from '../virtio/guest-ram.js';

export type MachineExit =
  | { kind: 'poweroff'; code: number }
  | { kind: 'reboot' }
  | { kind: 'quit' }
  | { kind: 'error'; message: string };

/** A latch: `end` resolves `ending` with its first reason and ignores later ones; `hasEnded` tells whether it was called. */
export function endOnce(): { ending: Promise<MachineExit>; end: (exit: MachineExit) => void; hasEnded: () => boolean } {
  let finish: (exit: MachineExit) => void = () => {};
  const ending = new Promise<MachineExit>((resolve) => (finish = resolve));
  let ended = false;
  const end = (exit: MachineExit): void => {
    if (ended) return;
    ended = true;
    finish(exit);
  };
  return { ending, end, hasEnded: () => ended };
}

/** Boots a machine, again after each guest reboot unless `noReboot`; resolves with how it finally ended. */
export async function runMachine<M extends { start(): void; readonly exit: Promise<MachineExit> }>(
  create: () => M,
  options: { noReboot: boolean; onMachine?: (machine: M) => void },
): Promise<MachineExit> {
  for (;;) {
    const machine = create();
    options.onMachine?.(machine);
    machine.start();
    const exit = await machine.exit;
    if (exit.kind !== 'reboot' || options.noReboot) return exit;
  }
}

/** Guest RAM at guest-physical [gpaBase, gpaBase + size) held in `bytes` from `hostOffset` on. */
export function flatGuestRam(bytes: Uint8Array, gpaBase: number, hostOffset: number, size: number): GuestRam {
  const host = (gpa: number, length: number): number => {
    if (gpa < gpaBase || gpa + length > gpaBase + size) throw new GuestMemoryError(gpa, length);
    return gpa - gpaBase + hostOffset;
  };
  return {
    read: (gpa, dst) => {
      const at = host(gpa, dst.length);
      dst.set(bytes.subarray(at, at + dst.length));
    },
    write: (gpa, src) => bytes.set(src, host(gpa, src.length)),
    view: (gpa, length) => {
      const at = host(gpa, length);
      return bytes.subarray(at, at + length);
    },
  };
}
