/**
 * End to end on the interpreter alone: the bundled Linux guest boots on the
 * virt machine with `engine: 'interp'` (no JIT) to its marker line and powers
 * off. The console log is in the failure message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { QueuedCharBackend } from '../../src/emulator/devices/char-backend.js';
import { runVirtMachine } from '../../src/emulator/machines/riscv-virt.js';
import { BOOT_MARKER, BUNDLED_GUEST, POWEROFF_APPEND, requireGuest } from '../guests/riscv-guests.js';

test('the bundled Linux guest boots to its marker and powers off on the interpreter', async () => {
  requireGuest(BUNDLED_GUEST);
  const chunks: Buffer[] = [];
  const serial = new QueuedCharBackend((bytes) => {
    chunks.push(Buffer.from(bytes));
  });
  const exit = await runVirtMachine(
    {
      ramBytes: 256 << 20,
      harts: 1,
      engine: 'interp',
      kernel: await readFile(BUNDLED_GUEST.kernel),
      initrd: await readFile(BUNDLED_GUEST.initrd),
      append: POWEROFF_APPEND,
      serial,
    },
    { noReboot: true },
  );
  const log = Buffer.concat(chunks).toString('latin1');
  assert.deepEqual(exit, { kind: 'poweroff', code: 0 }, log.slice(-3000));
  assert.match(log, new RegExp(`${BOOT_MARKER} \\S+ 1`), log.slice(-3000));
});
