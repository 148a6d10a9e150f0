/**
 * Debian bookworm's linux-image-amd64 on `tsemu run -M microvm` (KVM), with -smp 1
 * and -smp 2: the kernel boots the busybox initramfs whose /init prints
 * "TSEMU-BOOT-OK <release> <cpus>" and powers off (tsemu.test=poweroff), which ends
 * tsemu with exit 0. The files come from scripts/guests/fetch-debian-amd64.sh (.ci/run
 * runs it): missing files fail the test.
 *
 * A stock Linux kernel needs hardware virtualization under KVM (VT-x or AMD-V: the
 * "vmx" or "svm" CPU flag). On a software KVM such as kvm-pvm it does not boot (QEMU's
 * neither), so there each test prints one line saying so and passes; the project's
 * x86 test guest (microvm-guest.test.ts) proves the machine on such hosts. The
 * deadline only bounds the wait for the marker; a missed marker shows the console.
 * On every host, the fetched kernel goes through the microvm loader: a 64-bit
 * bzImage whose parts land where the boot protocol wants them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { hostHasHardwareVirtualization } from '../../src/emulator/accel/kvm/kvm.js';
import { loadMicrovmBoot } from '../../src/emulator/machines/microvm-boot.js';
import { parseBzImage } from '../../src/emulator/x86/bzimage.js';
import { ROOT } from '../helpers/peers.js';
import { POWEROFF_APPEND, assertCleanPoweroff, requireGuest, watchBoot } from '../guests/riscv-guests.js';

const GUEST_DIR = path.join(ROOT, '.cache/guests/debian-amd64');
const DEBIAN_AMD64 = {
  name: 'debian-amd64',
  kernel: path.join(GUEST_DIR, 'vmlinuz'),
  initrd: path.join(GUEST_DIR, 'initramfs.cpio.gz'),
  makeWith: 'scripts/guests/fetch-debian-amd64.sh',
};
const DEADLINE_SECONDS = 600;

test('the Debian kernel is a 64-bit bzImage the microvm loader places below the initrd', () => {
  requireGuest(DEBIAN_AMD64);
  const kernel = readFileSync(DEBIAN_AMD64.kernel);
  const initrd = readFileSync(DEBIAN_AMD64.initrd);
  const image = parseBzImage(kernel);
  assert.ok(image.header.version >= 0x020c, `boot protocol 0x${image.header.version.toString(16)}`);
  const writes: Array<[number, number]> = [];
  const ram = { read: () => {}, write: (gpa: number, src: Uint8Array) => void writes.push([gpa, src.length]) };
  const ramBytes = 512 * 1024 ** 2;
  const layout = loadMicrovmBoot(ram, { ramBytes, cpus: 2, kernel, initrd, append: POWEROFF_APPEND });
  assert.equal(layout.entry, 0x100200);
  assert.ok(layout.kernel.end - layout.kernel.start >= image.header.initSize);
  assert.ok(layout.initrd!.start >= layout.kernel.end && layout.initrd!.end <= ramBytes, JSON.stringify(layout));
  assert.ok(writes.every(([gpa, length]) => gpa + length <= ramBytes));
});

for (const smp of [1, 2]) {
  test(`Debian bookworm amd64 boots to its /init marker with -smp ${smp} and powers off`, async () => {
    requireGuest(DEBIAN_AMD64);
    if (!hostHasHardwareVirtualization()) {
      const kvm = existsSync('/sys/module/kvm_pvm') ? 'kvm-pvm' : 'no vmx/svm CPU flag';
      console.log(`no hardware virtualization (${kvm}): Debian bookworm boot with -smp ${smp} not run`);
      return;
    }
    const args = [
      path.join(ROOT, 'bin/tsemu.js'), 'run', '-M', 'microvm', '-m', '512M', '-smp', String(smp),
      '-kernel', DEBIAN_AMD64.kernel, '-initrd', DEBIAN_AMD64.initrd, '-append', POWEROFF_APPEND,
      '-serial', 'stdio', '-no-reboot',
    ];
    assertCleanPoweroff(await watchBoot(process.execPath, args, { deadlineSeconds: DEADLINE_SECONDS }), smp);
  });
}
