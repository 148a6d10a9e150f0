/**
 * The x86 test guest is a bzImage QEMU boots too: qemu-system-x86_64 -M microvm
 * with KVM enters it through its firmware and the image's real-mode entry
 * (fixtures/x86-guest/setup.S), and the guest reaches its marker with two CPUs
 * and powers off through the hardware-reduced ACPI sleep register, so QEMU exits
 * 0. bench/boot-kvm.ts times this run beside tsemu's. The RTC is switched on
 * (QEMU's microvm leaves it off under ACPI): it gives the guest its date and the
 * memory size the real-mode entry reads where the firmware's E820 does not
 * answer (on kvm-pvm). The deadline only bounds the wait.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { requirePeer, runProgram } from '../helpers/peers.js';
import { x86GuestForTests } from './x86-guest.js';

const bzImage = x86GuestForTests();

test('qemu-system-x86_64 -M microvm boots the x86 test guest with -smp 2 and exits 0 on its poweroff', async () => {
  requirePeer('qemu-system-x86_64');
  const r = await runProgram('timeout', [
    '120', 'qemu-system-x86_64', '-M', 'microvm,rtc=on', '-accel', 'kvm', '-m', '128M', '-smp', '2', '-nographic', '-no-reboot',
    '-kernel', bzImage(), '-append', 'console=ttyS0',
  ]);
  const log = `\n--- console ---\n${r.stdout}${r.stderr}`;
  assert.equal(r.code, 0, log);
  assert.match(r.stdout, /^smp: 2 of 2 cpus up\r?$/m, log);
  assert.match(r.stdout, /TSEMU-X86-GUEST-OK/, log);
});
