/**
 * The ssh scenario of issue 5 on the RISC-V machine, as a user runs it:
 * `tsemu img create -f qcow2 -b base.qcow2 -F qcow2 overlay.qcow2` over the
 * root file system scripts/guests/build-riscv64-rootfs.sh makes (ext4 with
 * busybox and dropbear, in .cache/guests/riscv64-rootfs), then `tsemu run`
 * with the bundled kernel, root=/dev/vda from the overlay on virtio-blk and
 * `--net user,hostfwd=tcp:127.0.0.1:PORT-:22`, then `ssh -p PORT -i KEY
 * root@127.0.0.1 COMMAND` runs COMMAND in the guest (it writes a file and
 * syncs); after a poweroff `qemu-img check` calls the overlay clean and the
 * base is unchanged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { mustRun, qemuImg, requirePeer, scratchDir, tsemu } from '../helpers/peers.js';
import { BUNDLED_GUEST } from '../guests/riscv-guests.js';
import { GuestConsole, RISCV_ROOTFS, freePort, sshRootfs } from './guest-console.js';

const BASE = RISCV_ROOTFS.base;

test('ssh into the RISC-V guest booted from a qcow2 overlay with --net user,hostfwd', async () => {
  requirePeer('ssh');
  requirePeer('qemu-img');
  for (const file of [BASE, RISCV_ROOTFS.key]) assert.ok(existsSync(file), `${file} is missing: run ${RISCV_ROOTFS.makeWith}`);
  const { dir, cleanup } = await scratchDir();
  const baseBefore = await readFile(BASE);
  const overlay = path.join(dir, 'overlay.qcow2');
  await mustRun(tsemu(['img', 'create', '-f', 'qcow2', '-b', BASE, '-F', 'qcow2', overlay]), 'img create');
  const port = await freePort();
  const guest = GuestConsole.start([
    '-m', '256M', '--kernel', BUNDLED_GUEST.kernel, '--append', 'root=/dev/vda rw console=ttyS0',
    '--drive', `file=${overlay},if=virtio`, '--device', 'virtio-rng', '--net', `user,hostfwd=tcp:127.0.0.1:${port}-:22`,
  ]);
  try {
    const ready = await guest.waitFor(/TSEMU-ROOTFS-OK ([\d./]+)\r?\n/, 300);
    assert.equal(ready[1], '10.0.2.15/24');
    const r = await sshRootfs(port, 'echo "hello from $(uname -m)" > /root/hello && sync && cat /root/hello && id -u');
    assert.equal(r.code, 0, `ssh failed: ${r.stderr}\n--- console (tail) ---\n${guest.tail()}`);
    assert.equal(r.stdout, 'hello from riscv64\n0\n');
    guest.type('poweroff -f');
    assert.equal(await guest.stop(120), 0, guest.tail());
    const check = await qemuImg(['check', overlay]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.ok((await readFile(BASE)).equals(baseBefore), 'the base image changed');
  } finally {
    await guest.stop();
    await cleanup();
  }
});
