import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ROOT } from '../helpers/peers.js';
import {
  BOOT_MARKER, DEBIAN_GUEST, POWEROFF_APPEND, consoleTail, requireGuest, tsemuBootArgs, watchBoot, BUNDLED_GUEST,
} from '../guests/riscv-guests.js';

/** A generous bound on the wait for a marker (a loaded CI machine is slow), never a speed requirement. */
const DEADLINE_SECONDS = 1800;

test('tsemu run with no --kernel boots the bundled guest to a shell that takes typed commands; exit powers off', async () => {
  requireGuest(BUNDLED_GUEST);
  const run = await watchBoot(process.execPath, [path.join(ROOT, 'bin/tsemu.js'), 'run'], {
    deadlineSeconds: DEADLINE_SECONDS,
    typeAfterMarker: 'echo typed-$((6*7))\nexit\n',
  });
  assert.ok(run.markerSeconds !== null, `no ${BOOT_MARKER}:\n${consoleTail(run)}`);
  assert.match(run.console, /typed-42/, consoleTail(run));
  assert.equal(run.code, 0, consoleTail(run));
});

test("Debian trixie's riscv64 kernel with a busybox initramfs boots to the marker on tsemu's SBI", async () => {
  requireGuest(DEBIAN_GUEST);
  const run = await watchBoot(
    process.execPath,
    tsemuBootArgs({ kernel: DEBIAN_GUEST.kernel, initrd: DEBIAN_GUEST.initrd, append: POWEROFF_APPEND }),
    { deadlineSeconds: DEADLINE_SECONDS },
  );
  assert.ok(run.markerSeconds !== null, `no ${BOOT_MARKER}:\n${consoleTail(run)}`);
  assert.match(run.markerLine, /TSEMU-BOOT-OK 6\.12\.\S+ 1/);
  assert.equal(run.code, 0, consoleTail(run));
  console.log(`# Debian guest: marker after ${run.markerSeconds.toFixed(1)} s, exit after ${run.exitSeconds?.toFixed(1)} s`);
});
