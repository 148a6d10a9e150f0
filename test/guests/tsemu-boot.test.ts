/**
 * Debian trixie's riscv64 kernel on `tsemu run -M virt` beyond the default boot
 * (test/machine/linux-boot.test.ts has that one and the bundled guest's shell):
 * with -smp 2 (both harts come up: the marker names 2 CPUs) and on Debian's OpenSBI
 * (--bios fw_dynamic.bin) instead of tsemu's own SBI. Each reaches the marker line
 * printed by /init and powers off, which ends tsemu with exit 0. The same boots pass
 * on QEMU in qemu-boot.test.ts, so a failure here is tsemu's. The deadline only
 * bounds the wait; a missed marker shows the console's tail.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import {
  assertCleanPoweroff, type BootOptions, type BootRun, DEBIAN_GUEST, DEBIAN_OPENSBI, POWEROFF_APPEND, requireGuest,
  type RiscvGuest, tsemuBootArgs, watchBoot,
} from './riscv-guests.js';

const DEADLINE_SECONDS = 1800;

async function bootOnTsemu(guest: RiscvGuest, o: Partial<BootOptions>): Promise<BootRun> {
  requireGuest(guest);
  const args = tsemuBootArgs({ kernel: guest.kernel, initrd: guest.initrd, append: POWEROFF_APPEND, ...o });
  return watchBoot(process.execPath, args, { deadlineSeconds: DEADLINE_SECONDS });
}

test('debian guest boots with -smp 2 on tsemu run', async () => {
  assertCleanPoweroff(await bootOnTsemu(DEBIAN_GUEST, { smp: 2 }), 2);
});

test(`debian guest boots on Debian's OpenSBI (--bios fw_dynamic.bin)`, async () => {
  assert.ok(existsSync(DEBIAN_OPENSBI), `${DEBIAN_OPENSBI} is missing: apt-get install opensbi`);
  assertCleanPoweroff(await bootOnTsemu(DEBIAN_GUEST, { bios: DEBIAN_OPENSBI }), 1);
});
