/**
 * The test guests boot on the real QEMU (qemu-system-riscv64 -M virt -bios default,
 * i.e. OpenSBI): each reaches the marker line printed by its /init, with the CPU
 * count asked for, and powers off cleanly (QEMU exits 0 after the kernel's
 * "reboot: Power down"), on QEMU's built-in OpenSBI and (Debian's kernel) on Debian's
 * opensbi package, the firmware `tsemu run --bios` is tested with. This proves the guests themselves, so that a tsemu boot
 * failure on the same files is tsemu's. The bundled guest's interactive shell is
 * driven once: commands typed after the marker run, and leaving the shell powers off.
 * A missed marker shows the tail of the console log.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { requirePeer, scratchDir } from '../helpers/peers.js';
import {
  assertCleanPoweroff, BUNDLED_GUEST, type BootRun, consoleTail, DEBIAN_GUEST, DEBIAN_OPENSBI, flatKernel,
  POWEROFF_APPEND, qemuBootArgs, requireGuest, RISCV_GUESTS, type RiscvGuest, watchBoot,
} from './riscv-guests.js';

const QEMU = 'qemu-system-riscv64';
/** Bound on the wait for a poweroff; these boots take seconds. */
const DEADLINE_SECONDS = 600;

interface QemuBoot {
  append?: string;
  smp?: number;
  bios?: string;
  typeAfterMarker?: string;
}

async function bootOnQemu(guest: RiscvGuest, { append = POWEROFF_APPEND, smp = 1, bios, typeAfterMarker }: QemuBoot): Promise<BootRun> {
  requirePeer(QEMU);
  requireGuest(guest);
  const { dir, cleanup } = await scratchDir();
  try {
    const kernel = await flatKernel(guest, dir);
    return await watchBoot(QEMU, qemuBootArgs({ kernel, initrd: guest.initrd, append, smp, bios }), {
      deadlineSeconds: DEADLINE_SECONDS,
      typeAfterMarker,
    });
  } finally {
    await cleanup();
  }
}

for (const guest of RISCV_GUESTS) {
  for (const smp of [1, 2]) {
    test(`${guest.name} guest: marker and poweroff on ${QEMU} -smp ${smp}`, async () => {
      assertCleanPoweroff(await bootOnQemu(guest, { smp }), smp);
    });
  }
}

test(`debian guest: marker and poweroff on Debian's OpenSBI (-bios fw_dynamic.bin) -smp 2`, async () => {
  assert.ok(existsSync(DEBIAN_OPENSBI), `${DEBIAN_OPENSBI} is missing: apt-get install opensbi`);
  assertCleanPoweroff(await bootOnQemu(DEBIAN_GUEST, { smp: 2, bios: DEBIAN_OPENSBI }), 2);
});

test('bundled guest: the console shell runs what is typed and powers off when it exits', async () => {
  const run = await bootOnQemu(BUNDLED_GUEST, { append: 'console=ttyS0', typeAfterMarker: 'echo shell-says-$((6*7))\nexit\n' });
  assertCleanPoweroff(run, 1);
  assert.match(run.console, /shell-says-42/, `typed command did not run\n${consoleTail(run)}`);
});
