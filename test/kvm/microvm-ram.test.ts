/**
 * The microvm machine's RAM layout: below the 32-bit hole up to 3 GiB, the rest
 * from 4 GiB up, in the e820 map the same way; on this host's KVM, RAM larger
 * than one 4 GiB koffi view is mapped in several slots whose guest-memory view
 * reads and writes across the chunk boundary, refuses the hole, and costs only
 * the pages touched; RAM past the CPU's physical address width is refused.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GuestMemoryError } from '../../src/emulator/bus/interfaces.js';
import { QueuedCharBackend } from '../../src/emulator/devices/char-backend.js';
import { KvmSystem } from '../../src/emulator/accel/kvm/kvm.js';
import { microvmE820 } from '../../src/emulator/machines/microvm-boot.js';
import { createMicrovmMachine } from '../../src/emulator/machines/microvm.js';
import { MAX_CHUNK, mapMicrovmRam, microvmRamLayout } from '../../src/emulator/machines/microvm-ram.js';
import { physicalAddressBits } from '../../src/emulator/x86/cpuid.js';

const GIB = 1024 ** 3;

describe('microvm RAM layout', () => {
  it('keeps up to 3 GiB below the hole and puts the rest at 4 GiB', () => {
    assert.deepEqual(microvmRamLayout(64 << 20), [{ gpa: 0, size: 64 << 20 }]);
    assert.deepEqual(microvmRamLayout(3 * GIB), [{ gpa: 0, size: 3 * GIB }]);
    assert.deepEqual(microvmRamLayout(3 * GIB + 4096), [{ gpa: 0, size: 3 * GIB }, { gpa: 4 * GIB, size: 4096 }]);
    assert.deepEqual(microvmRamLayout(10 * GIB), [{ gpa: 0, size: 3 * GIB }, { gpa: 4 * GIB, size: 7 * GIB }]);
  });

  it('splits the e820 map the same way', () => {
    assert.deepEqual(microvmE820(10 * GIB).map((e) => [e.addr, e.size, e.type]), [
      [0, 0x9fc00, 1],
      [0x9fc00, 0x100000 - 0x9fc00, 2],
      [0x100000, 3 * GIB - 0x100000, 1],
      [4 * GIB, 7 * GIB, 1],
    ]);
  });
});

describe('microvm RAM on KVM', () => {
  it('maps RAM over 4 GiB in several slots, readable and writable across their boundary, not in the hole', () => {
    const kvm = KvmSystem.open();
    const vm = kvm.createVm();
    const ram = mapMicrovmRam(vm, 3 * GIB + 2 * MAX_CHUNK);
    try {
      const boundary = 4 * GIB + MAX_CHUNK;
      const pattern = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
      ram.memory.write(boundary - 8, pattern);
      const back = new Uint8Array(16);
      ram.memory.read(boundary - 8, back);
      assert.deepEqual(back, pattern);
      const low = new Uint8Array(8);
      ram.memory.read(3 * GIB - 8, low);
      assert.deepEqual(low, new Uint8Array(8));
      assert.throws(() => ram.memory.read(3 * GIB - 4, new Uint8Array(8)), GuestMemoryError);
      assert.throws(() => ram.memory.write(3 * GIB + 4096, new Uint8Array(1)), GuestMemoryError);
      assert.throws(() => ram.memory.read(4 * GIB + 2 * MAX_CHUNK, new Uint8Array(1)), GuestMemoryError);
    } finally {
      vm.close();
      ram.unmap();
      kvm.close();
    }
  });

  it('refuses RAM past the physical address width the CPU reports', () => {
    const kvm = KvmSystem.open();
    const bits = physicalAddressBits(kvm.supportedCpuid());
    kvm.close();
    const serial = new QueuedCharBackend(() => {});
    assert.throws(
      () => createMicrovmMachine({ ramBytes: 2 ** bits, cpus: 1, kernel: new Uint8Array(4096), serial }),
      new RegExp(`-m: this host's CPU addresses ${bits} bits of guest-physical space`),
    );
  });
});
