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
 */
import { test } from 'node:test';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { hostHasHardwareVirtualization } from '../../src/emulator/accel/kvm/kvm.js';
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
