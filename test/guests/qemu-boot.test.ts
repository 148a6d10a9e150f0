/**
 * The test guests boot on the real QEMU (qemu-system-riscv64 -M virt -bios default,
 * i.e. OpenSBI): each reaches the marker line printed by its /init, with the CPU
 * count asked for, and powers off cleanly (QEMU exits 0 after the kernel's
 * "reboot: Power down"). This proves the guests themselves, so that a tsemu boot
 * failure on the same files is tsemu's. The bundled guest's interactive shell is
 * driven once: commands typed after the marker run, and leaving the shell powers off.
 * A missed marker shows the tail of the console log.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requirePeer, scratchDir } from '../helpers/peers.js';
import {
  BUNDLED_GUEST, type BootRun, consoleTail, flatKernel, POWEROFF_APPEND, qemuBootArgs, requireGuest, RISCV_GUESTS,
  type RiscvGuest, watchBoot,
} from './riscv-guests.js';

const QEMU = 'qemu-system-riscv64';
/** Bound on the wait for a poweroff; these boots take seconds. */
const DEADLINE_SECONDS = 600;

async function bootOnQemu(guest: RiscvGuest, append: string, smp: number, typeAfterMarker?: string): Promise<BootRun> {
  requirePeer(QEMU);
  requireGuest(guest);
  const { dir, cleanup } = await scratchDir();
  try {
    const kernel = await flatKernel(guest, dir);
    return await watchBoot(QEMU, qemuBootArgs({ kernel, initrd: guest.initrd, append, smp }), {
      deadlineSeconds: DEADLINE_SECONDS,
      typeAfterMarker,
    });
  } finally {
    await cleanup();
  }
}

function assertCleanPoweroff(run: BootRun, smp: number): void {
  const log = `\n--- console (tail) ---\n${consoleTail(run)}`;
  assert.notEqual(run.markerSeconds, null, `no marker line${log}`);
  assert.match(run.markerLine, new RegExp(` ${smp}$`), `marker line '${run.markerLine}' should end with the CPU count ${smp}${log}`);
  assert.notEqual(run.exitSeconds, null, `still running ${DEADLINE_SECONDS} s after start${log}`);
  assert.equal(run.code, 0, `QEMU exit code${log}`);
  assert.match(run.console, /reboot: Power down/, `no kernel poweroff message${log}`);
}

for (const guest of RISCV_GUESTS) {
  for (const smp of [1, 2]) {
    test(`${guest.name} guest: marker and poweroff on ${QEMU} -smp ${smp}`, async () => {
      assertCleanPoweroff(await bootOnQemu(guest, POWEROFF_APPEND, smp), smp);
    });
  }
}

test('bundled guest: the console shell runs what is typed and powers off when it exits', async () => {
  const run = await bootOnQemu(BUNDLED_GUEST, 'console=ttyS0', 1, 'echo shell-says-$((6*7))\nexit\n');
  assertCleanPoweroff(run, 1);
  assert.match(run.console, /shell-says-42/, `typed command did not run\n${consoleTail(run)}`);
});
