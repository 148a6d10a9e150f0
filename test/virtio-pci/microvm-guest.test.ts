/**
 * virtio-pci on the microvm machine, on this host's KVM, with the project's x86
 * test guest (fixtures/x86-guest, built here with the host's gcc): the guest
 * walks PCI bus 0, finds each virtio-pci device at its firmware-assigned BAR,
 * walks the capabilities, negotiates VERSION_1, sets up queue 0 in its RAM and
 * sends one request whose completion arrives as a level-triggered INTx
 * interrupt through the in-kernel IOAPIC (acknowledged by reading the ISR):
 * 16 random bytes from virtio-rng, and sector 0 of a raw disk with a known
 * byte sum from virtio-blk; with -smp 2 across a guest reboot (fresh devices
 * and doorbell per boot). The same through `tsemu run -M microvm --device
 * virtio-rng-pci --drive ...,if=none --device virtio-blk-pci,drive=...` and
 * virtio-net-pci on a user netdev (negotiation only); the other bus's device
 * names are clear errors on each machine.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { closeImage, openImage } from '../../src/block/open.js';
import type { ImageNode } from '../../src/block/formats/format.js';
import { QueuedCharBackend } from '../../src/emulator/devices/char-backend.js';
import { createMicrovmMachine, runMicrovmMachine } from '../../src/emulator/machines/microvm.js';
import { VirtioBlk } from '../../src/emulator/virtio/blk.js';
import { VirtioRng } from '../../src/emulator/virtio/rng.js';
import { scratchDir, tsemu } from '../helpers/peers.js';
import { x86GuestForTests } from '../kvm/x86-guest.js';

const MARKER = 'TSEMU-X86-GUEST-OK';
const SECTOR0 = Uint8Array.from({ length: 512 }, (_, i) => (i * 7 + 3) & 0xff);
const SECTOR0_SUM = SECTOR0.reduce((a, b) => a + b, 0);
const DISK_BYTES = 1 << 20;

const bzImage = x86GuestForTests();
let disk = '';
let cleanup: () => Promise<void> = async () => {};

before(async () => {
  const scratch = await scratchDir();
  cleanup = scratch.cleanup;
  disk = path.join(scratch.dir, 'disk.raw');
  const bytes = new Uint8Array(DISK_BYTES);
  bytes.set(SECTOR0);
  writeFileSync(disk, bytes);
});
after(() => cleanup());

describe('virtio-pci on microvm with the x86 test guest', () => {
  it('-smp 1: virtio-rng and virtio-blk requests complete with INTx, then the guest powers off', async () => {
    const node: ImageNode = await openImage(disk, { format: 'raw' });
    let output = '';
    try {
      const serial = new QueuedCharBackend((bytes) => (output += Buffer.from(bytes).toString('latin1')));
      const machine = createMicrovmMachine({
        ramBytes: 64 << 20, cpus: 1, kernel: readFileSync(bzImage()), append: 'console=ttyS0', serial,
        virtio: [() => new VirtioRng(), () => new VirtioBlk({ node, id: 'd0', readOnly: true, writeCache: false, discard: 'ignore' })],
      });
      machine.start();
      // A deadline on the marker only: a guest that hangs is stopped and its console shown.
      const deadline = setTimeout(() => machine.stop(), 120_000);
      const exit = await machine.exit;
      clearTimeout(deadline);
      const console = output.replace(/\r\n/g, '\n');
      assert.deepEqual(exit, { kind: 'poweroff', code: 0 }, console);
      assert.ok(console.includes(MARKER), console);
      assert.match(console, /^pci: 00:1\.0 vendor 0x1af4 device 0x1044 class 0xff00$/m);
      assert.match(console, /^pci: 00:2\.0 vendor 0x1af4 device 0x1042 class 0x10000$/m);
      assert.match(console, /^pci: 3 devices$/m);
      assert.match(console, /^virtio: rng: 1 queues, 16 bytes, ([1-9]|1[0-6]) non-zero, irq 10$/m);
      assert.match(console, new RegExp(`^virtio: blk: ${DISK_BYTES / 512} sectors, sector 0 byte sum ${SECTOR0_SUM}, 513 bytes, irq 11$`, 'm'));
      assert.doesNotMatch(console, /FAIL/);
    } finally {
      await closeImage(node);
    }
  });

  it('-smp 2 and a guest reboot: each boot gets fresh devices and completes its request', async () => {
    let output = '';
    let boots = 0;
    const serial = new QueuedCharBackend((bytes) => (output += Buffer.from(bytes).toString('latin1')));
    const exit = await runMicrovmMachine(
      { ramBytes: 64 << 20, cpus: 2, kernel: readFileSync(bzImage()), append: 'tsemu.reboot', serial, virtio: [() => new VirtioRng()] },
      { noReboot: false, onMachine: (machine) => ++boots === 3 && machine.stop() },
    );
    assert.deepEqual(exit, { kind: 'quit' });
    assert.equal(output.match(/virtio: rng: 1 queues, 16 bytes/g)?.length, 2, output);
    assert.equal(output.match(/smp: 2 of 2 cpus up/g)?.length, 2, output);
    assert.doesNotMatch(output, /FAIL/);
  });

  it('tsemu run -M microvm --device virtio-rng-pci, virtio-blk-pci on an if=none drive, virtio-net-pci on a user netdev', async () => {
    const r = await tsemu([
      'run', '-M', 'microvm', '-m', '64M', '-kernel', bzImage(), '-append', 'console=ttyS0',
      '-device', 'virtio-rng-pci', '-drive', `file=${disk},format=raw,if=none,id=d0,readonly=on`, '-device', 'virtio-blk-pci,drive=d0',
      '-netdev', 'user,id=n0', '-device', 'virtio-net-pci,netdev=n0',
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /virtio: rng: 1 queues, 16 bytes/);
    assert.match(r.stdout, new RegExp(`virtio: blk: ${DISK_BYTES / 512} sectors, sector 0 byte sum ${SECTOR0_SUM}, 513 bytes, irq 11`));
    assert.match(r.stdout, /virtio: device 1: 2 queues, features negotiated/);
    assert.match(r.stdout, /pci: 00:3\.0 vendor 0x1af4 device 0x1041 class 0x20000/);
    assert.match(r.stdout, /TSEMU-X86-GUEST-OK/);
    assert.doesNotMatch(r.stderr, /needs a reset/);
  });

  it('virtio-mmio names on microvm and virtio-pci names on virt are clear errors', async () => {
    const onMicrovm = await tsemu(['run', '-M', 'microvm', '-kernel', bzImage(), '-device', 'virtio-rng-device']);
    assert.equal(onMicrovm.code, 1);
    assert.match(onMicrovm.stderr, /--device virtio-rng-device: the microvm machine takes virtio-pci devices \(virtio-rng-pci\)/);
    const onVirt = await tsemu(['run', '-M', 'virt', '-device', 'virtio-rng-pci']);
    assert.equal(onVirt.code, 1);
    assert.match(onVirt.stderr, /--device virtio-rng-pci: the virt machine takes virtio-mmio devices \(virtio-rng-device\)/);
  });
});
