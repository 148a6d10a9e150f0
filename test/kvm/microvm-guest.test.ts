/**
 * The microvm machine on this host's KVM with the project's x86 test guest
 * (fixtures/x86-guest, built here with the host's gcc and binutils): boot
 * through the bzImage 64-bit path, boot_params/e820/cmdline/initrd, ACPI,
 * PIT and UART interrupts through the in-kernel irqchip (the UART's through an
 * irqfd), the PCI walk, a user-mode loop, the CMOS RTC's date, INIT/SIPI for
 * the other CPUs, and ACPI poweroff (exit 0; the S5 write rings an ioeventfd
 * doorbell), with -smp 1 and -smp 2; with -m 5G the e820 map
 * splits RAM around the 32-bit hole and the guest writes and reads RAM above
 * 4 GiB (a second KVM slot, untouched pages cost nothing); an i8042 reset reboots
 * (runMicrovmMachine boots again, or ends with 'reboot' under noReboot).
 * Also: bad boot images are clear errors.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { QueuedCharBackend } from '../../src/emulator/devices/char-backend.js';
import { createMicrovmMachine, runMicrovmMachine, type MachineExit, type MicrovmConfig } from '../../src/emulator/machines/microvm.js';
import { x86GuestForTests } from './x86-guest.js';

const MARKER = 'TSEMU-X86-GUEST-OK';
const INITRD = Uint8Array.from({ length: 5000 }, (_, i) => (i * 7) & 0xff);
/** The user-mode loop's xorshift64 result after 200,000,000 rounds from its fixed seed. */
const USER_RESULT = '0x616c585103dbc732';

const bzImage = x86GuestForTests();
let kernelBytes: Uint8Array | undefined;
/** The built guest's bytes (read once the file's before hook has built it). */
const guestKernel = (): Uint8Array => (kernelBytes ??= readFileSync(bzImage()));

function guestConfig(cpus: number, append: string, output: (text: string) => void, ramBytes = 64 << 20): MicrovmConfig {
  const serial = new QueuedCharBackend((bytes) => output(Buffer.from(bytes).toString('latin1')));
  return { ramBytes, cpus, kernel: guestKernel(), initrd: INITRD, append, serial };
}

async function boot(cpus: number, ramBytes?: number): Promise<{ exit: MachineExit; console: string }> {
  let output = '';
  const machine = createMicrovmMachine(guestConfig(cpus, 'console=ttyS0 tsemu.test=1', (text) => (output += text), ramBytes));
  machine.start();
  // A deadline on the marker only: a guest that hangs is stopped and its console shown.
  const deadline = setTimeout(() => machine.stop(), 120_000);
  const exit = await machine.exit;
  clearTimeout(deadline);
  return { exit, console: output.replace(/\r\n/g, '\n') };
}

describe('microvm with the x86 test guest', () => {
  for (const cpus of [1, 2]) {
    it(`-smp ${cpus}: reaches the marker and powers off with exit 0`, async () => {
      const { exit, console } = await boot(cpus);
      assert.ok(console.includes(MARKER), `no marker; console:\n${console}`);
      assert.deepEqual(exit, { kind: 'poweroff', code: 0 }, console);
      const initrdSum = INITRD.reduce((a, b) => a + b, 0);
      assert.match(console, /^boot: protocol 0x20f, loader 0xff$/m);
      assert.match(console, /^cmdline: console=ttyS0 tsemu\.test=1$/m);
      assert.match(console, /^e820: 0x100000-0x3ffffff type 1$/m);
      assert.match(console, /^e820: 3 entries, 65151 KiB RAM$/m);
      assert.doesNotMatch(console, /^highmem:/m);
      assert.match(console, new RegExp(`^initrd: 5000 bytes at 0x[0-9a-f]+, byte sum ${initrdSum}$`, 'm'));
      assert.match(console, new RegExp(`^acpi: 2 tables, ${cpus} cpus, pm1a_cnt 0x604, s5 5, pit gsi 0$`, 'm'));
      assert.match(console, /^timer: [3-9] ticks$/m);
      assert.match(console, /^uart: [1-9]\d* interrupts$/m);
      assert.match(console, /^pci: 00:0\.0 vendor 0x1b36 device 0x8 class 0x60000$/m);
      assert.match(console, /^pci: 1 devices$/m);
      const user = /^user: result (0x[0-9a-f]+) after (\d+) ticks, (\d+) in user mode$/m.exec(console);
      assert.ok(user, console);
      assert.equal(user[1], USER_RESULT);
      assert.ok(Number(user[3]) > 0, 'timer interrupts arrive while the guest is in user mode');
      const today = new Date();
      assert.match(console, new RegExp(`^rtc: ${today.getUTCFullYear()}-${today.getUTCMonth() + 1}-\\d+$`, 'm'));
      if (cpus > 1) {
        assert.match(console, /^cpu 1: up, apic id 1$/m);
        assert.match(console, /^smp: 2 of 2 cpus up$/m);
      }
      assert.doesNotMatch(console, /FAIL/);
    });
  }

  it('-m 5G: RAM below 3 GiB and from 4 GiB up, written and read by the guest above 4 GiB', async () => {
    const { exit, console } = await boot(1, 5 * 1024 ** 3);
    assert.deepEqual(exit, { kind: 'poweroff', code: 0 }, console);
    assert.match(console, /^e820: 0x100000-0xbfffffff type 1$/m);
    assert.match(console, /^e820: 0x100000000-0x17fffffff type 1$/m);
    assert.match(console, /^e820: 4 entries, 5242495 KiB RAM$/m);
    assert.match(console, /^highmem: 0x100000000 and 0x17ffffff8 read back$/m);
    assert.match(console, new RegExp(`^initrd: 5000 bytes at 0x7fffe000`, 'm'));
    assert.ok(console.includes(MARKER), console);
  });

  it('reboots on an i8042 reset: boots again, or ends with reboot under noReboot', async () => {
    let output = '';
    let boots = 0;
    const config = guestConfig(1, 'tsemu.reboot', (text) => (output += text));
    assert.deepEqual(await runMicrovmMachine(config, { noReboot: true, onMachine: () => boots++ }), { kind: 'reboot' });
    assert.equal(boots, 1);
    assert.equal(output.split('TSEMU-X86-GUEST-OK').length, 2, output);
    let second = false;
    const exit = await runMicrovmMachine(config, {
      noReboot: false,
      onMachine: (machine) => {
        boots++;
        if (second) machine.stop();
        second = true;
      },
    });
    assert.deepEqual(exit, { kind: 'quit' });
    assert.equal(boots, 3);
  });

  it('refuses a kernel that is not a 64-bit bzImage, and RAM that cannot hold it', () => {
    const kernel = guestKernel();
    const serial = new QueuedCharBackend(() => {});
    assert.throws(() => createMicrovmMachine({ ramBytes: 64 << 20, cpus: 1, kernel: new Uint8Array(4096), serial }), /not a bzImage/);
    assert.throws(() => createMicrovmMachine({ ramBytes: 1 << 20, cpus: 1, kernel, serial }), /-m: the microvm machine takes 2 MiB/);
    assert.throws(() => createMicrovmMachine({ ramBytes: 64 << 20, cpus: 0, kernel, serial }), /-smp/);
    assert.throws(
      () => createMicrovmMachine({ ramBytes: 64 << 20, cpus: 1, kernel, initrd: new Uint8Array(70 << 20), serial }),
      /initrd: .* do not fit/,
    );
  });
});
