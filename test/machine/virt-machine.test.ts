import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { QueuedCharBackend } from '../../src/emulator/devices/char-backend.js';
import { parseFdt } from '../../src/emulator/fdt/fdt-reader.js';
import { readChosen } from '../../src/emulator/fdt/fdt-query.js';
import { createVirtMachine, runVirtMachine, type VirtMachineConfig } from '../../src/emulator/machines/riscv-virt.js';
import type { EngineName } from '../../src/emulator/riscv/engine.js';
import { scratchDir } from '../helpers/peers.js';
import { BOOT_MARKER, BUNDLED_GUEST, DEBIAN_OPENSBI, POWEROFF_APPEND, requireGuest } from '../guests/riscv-guests.js';
import { buildGuest, type GuestMode } from './guests.js';

const MiB = 1 << 20;

/** A serial console that keeps the guest's output. */
class ConsoleLog extends QueuedCharBackend {
  private readonly chunks: Buffer[] = [];
  onOutput: (() => void) | undefined;

  constructor() {
    super((bytes) => {
      this.chunks.push(Buffer.from(bytes));
      this.onOutput?.();
    });
  }

  outputText(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }
}

async function guestConfig(dir: string, mode: GuestMode, extra: Partial<VirtMachineConfig> = {}): Promise<{ config: VirtMachineConfig; serial: ConsoleLog }> {
  const serial = new ConsoleLog();
  const kernel = await readFile(await buildGuest(dir, mode));
  return { serial, config: { ramBytes: 64 * MiB, harts: 1, engine: 'interp', kernel, serial, ...extra } };
}

for (const engine of ['interp', 'jit'] as EngineName[]) {
  test(`bare-metal guest (${engine}): UART and SBI DBCN output, SRST shutdown ends with poweroff 0`, async () => {
    const { dir, cleanup } = await scratchDir();
    try {
      const { config, serial } = await guestConfig(dir, 'HELLO', { engine });
      const exit = await runVirtMachine(config, { noReboot: true });
      assert.deepEqual(exit, { kind: 'poweroff', code: 0 });
      assert.equal(serial.outputText(), 'hello from the UART\nhello from SBI DBCN\n');
    } finally {
      await cleanup();
    }
  });
}

test('two harts: hart 0 starts hart 1 with SBI HSM hart_start (its own vCPU thread), then powers off', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const { config, serial } = await guestConfig(dir, 'SMP', { harts: 2 });
    const exit = await runVirtMachine(config, { noReboot: true });
    assert.equal(serial.outputText(), 'hart 1 up\nsmp done\n');
    assert.deepEqual(exit, { kind: 'poweroff', code: 0 });
  } finally {
    await cleanup();
  }
});

test('HSM hart_suspend: a retentive suspend returns when the SBI timer fires; a non-retentive one resumes at its address', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const { config, serial } = await guestConfig(dir, 'SUSPEND');
    const exit = await runVirtMachine(config, { noReboot: true });
    assert.equal(serial.outputText(), 'retentive suspend returned\nnon-retentive suspend resumed\n');
    assert.deepEqual(exit, { kind: 'poweroff', code: 0 });
  } finally {
    await cleanup();
  }
});

test('guest reboot: restarts the machine with fresh RAM, or ends with reboot under noReboot', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const { config, serial } = await guestConfig(dir, 'REBOOT');
    assert.deepEqual(await runVirtMachine(config, { noReboot: true }), { kind: 'reboot' });
    let boots = 0;
    const exit = await runVirtMachine(config, {
      noReboot: false,
      onMachine: (machine) => {
        if (++boots === 3) machine.stop();
      },
    });
    assert.equal(exit.kind, 'quit');
    assert.equal(serial.outputText(), 'boot\n'.repeat(3));
  } finally {
    await cleanup();
  }
});

test('stop() ends a machine whose hart sleeps in wfi', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const { config, serial } = await guestConfig(dir, 'IDLE');
    const machine = createVirtMachine(config);
    serial.onOutput = () => machine.stop();
    machine.start();
    assert.deepEqual(await machine.exit, { kind: 'quit' });
    assert.match(serial.outputText(), /^i/);
  } finally {
    await cleanup();
  }
});

test('boot layout: FDT at the top of RAM with bootargs and the initrd range; bad boots are clear errors', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const { config } = await guestConfig(dir, 'HELLO', { initrd: new Uint8Array(100_000), append: 'console=ttyS0 quiet' });
    const machine = createVirtMachine(config);
    const { layout } = machine;
    assert.equal(layout.fdt, 0x8000_0000 + 64 * MiB - 2 * MiB);
    assert.ok(layout.initrd && layout.initrd.end <= layout.fdt && layout.initrd.start >= layout.kernel.end);
    const chosen = readChosen(parseFdt(machine.deviceTree()));
    assert.equal(chosen.bootargs, 'console=ttyS0 quiet');
    assert.deepEqual([chosen.initrdStart, chosen.initrdEnd], [layout.initrd.start, layout.initrd.end]);
    assert.throws(() => createVirtMachine({ ...config, initrd: new Uint8Array(80 * MiB) }), /does not fit/);
    assert.throws(() => createVirtMachine({ ...config, kernel: new Uint8Array([0x7f, 0x45, 0x4c, 0x46]) }), /ELF/);
    assert.throws(() => createVirtMachine({ ...config, harts: 65 }), /1 to 64 harts/);
  } finally {
    await cleanup();
  }
});

/** Boots a Linux guest to the marker (powering off after it); the console log is in the failure message. */
async function bootLinux(config: Partial<VirtMachineConfig>): Promise<string> {
  requireGuest(BUNDLED_GUEST);
  const serial = new ConsoleLog();
  const exit = await runVirtMachine(
    {
      ramBytes: 256 * MiB,
      harts: 1,
      engine: 'jit',
      kernel: await readFile(BUNDLED_GUEST.kernel),
      initrd: await readFile(BUNDLED_GUEST.initrd),
      append: POWEROFF_APPEND,
      serial,
      ...config,
    },
    { noReboot: true },
  );
  const log = serial.outputText();
  assert.deepEqual(exit, { kind: 'poweroff', code: 0 }, log.slice(-3000));
  assert.ok(log.includes(BOOT_MARKER), log.slice(-3000));
  return log;
}

test('bundled Linux guest boots to its marker and powers off (tsemu SBI, jit)', async () => {
  const log = await bootLinux({});
  assert.match(log, /TSEMU-BOOT-OK \S+ 1/);
});

test('bundled Linux guest with two harts: the second starts through HSM', async () => {
  const log = await bootLinux({ harts: 2 });
  assert.match(log, /TSEMU-BOOT-OK \S+ 2/);
});

test('bundled Linux guest on Debian OpenSBI (--bios fw_dynamic.bin)', async () => {
  const log = await bootLinux({ bios: await readFile(DEBIAN_OPENSBI) });
  assert.match(log, /OpenSBI/);
  assert.match(log, /TSEMU-BOOT-OK \S+ 1/);
});
