/**
 * The virt device tree is one Linux accepts: QEMU's virt board boots each test
 * guest (the bundled kernel and Debian's) on OpenSBI with `-dtb` set to
 * tsemu's tree (QEMU then only rewrites /chosen's bootargs and initrd range),
 * and the kernel finds both harts, the UART console and the RTC (Debian's
 * also reports the PLIC's contexts), and powers off. A missed marker shows
 * the tail of the console log.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { serializeFdt } from '../../src/emulator/fdt/fdt-writer.js';
import { buildVirtFdt } from '../../src/emulator/machines/virt-fdt.js';
import {
  consoleTail, DEBIAN_GUEST, flatKernel, POWEROFF_APPEND, qemuBootArgs, requireGuest, RISCV_GUESTS, watchBoot,
} from '../guests/riscv-guests.js';
import { requirePeer, scratchDir } from '../helpers/peers.js';

const QEMU = 'qemu-system-riscv64';
/** Bound on the wait for the poweroff; these boots take seconds. */
const DEADLINE_SECONDS = 600;

const EVERY_KERNEL = [
  /Machine model: riscv-virtio,tsemu/,
  /ttyS0 at MMIO 0x10000000 .* is a 16550A/,
  /goldfish_rtc 101000\.rtc: registered as rtc0/,
  /reboot: Power down/,
];
const DEBIAN_ONLY = [/riscv-plic: plic@c000000: mapped 96 interrupts with 2 handlers for 4 contexts/];

for (const guest of RISCV_GUESTS) {
  test(`${guest.name} guest boots on QEMU’s virt board with tsemu’s device tree, -smp 2`, async () => {
    requirePeer(QEMU);
    requireGuest(guest);
    const { dir, cleanup } = await scratchDir();
    try {
      const dtb = path.join(dir, 'virt.dtb');
      const tree = buildVirtFdt({ ramSize: 512 * 1024 * 1024, harts: 2, isa: 'rv64imafdc_zicsr_zifencei_zicntr', bootargs: POWEROFF_APPEND });
      await writeFile(dtb, serializeFdt(tree));
      const kernel = await flatKernel(guest, dir);
      const args = [...qemuBootArgs({ kernel, initrd: guest.initrd, append: POWEROFF_APPEND, smp: 2 }), '-dtb', dtb];
      const run = await watchBoot(QEMU, args, { deadlineSeconds: DEADLINE_SECONDS });
      const log = `\n--- console (tail) ---\n${consoleTail(run)}`;
      assert.match(run.markerLine, / 2$/, `marker line '${run.markerLine}' should report 2 CPUs${log}`);
      for (const line of guest === DEBIAN_GUEST ? [...EVERY_KERNEL, ...DEBIAN_ONLY] : EVERY_KERNEL) {
        assert.match(run.console, line, `console lacks ${line}${log}`);
      }
      assert.equal(run.code, 0, `QEMU exit code${log}`);
    } finally {
      await cleanup();
    }
  });
}
