/**
 * `tsemu run -M microvm` from the built CLI: the x86 test guest (built here with
 * the host's gcc and binutils) boots on this host's KVM with QEMU's single-dash
 * spellings, prints its marker on the stdio console and powers off with exit 0;
 * options that do not apply to microvm are clear errors.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { tsemu } from '../helpers/peers.js';
import { buildX86Guest } from './x86-guest.js';

let bzImage = '';
let cleanup: () => Promise<void> = async () => {};

before(async () => {
  const guest = await buildX86Guest();
  cleanup = guest.cleanup;
  bzImage = guest.bzImage;
});

after(() => cleanup());

describe('tsemu run -M microvm', () => {
  it('boots the x86 test guest on KVM with -smp 2 and exits 0 on ACPI poweroff', async () => {
    const r = await tsemu(['run', '-M', 'microvm', '-m', '128M', '-smp', '2', '-kernel', bzImage, '-append', 'console=ttyS0']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /smp: 2 of 2 cpus up/);
    assert.match(r.stdout, /TSEMU-X86-GUEST-OK/);
  });

  it('refuses tcg, a missing kernel and the virt-only options', async () => {
    const cases: [string[], RegExp][] = [
      [['-accel', 'tcg', '-kernel', bzImage], /the microvm machine runs on kvm only/],
      [[], /the microvm machine needs --kernel/],
      [['-kernel', bzImage, '-bios', 'none'], /--bios does not apply to the microvm machine/],
      [['-kernel', bzImage, '-dtb', 'x.dtb'], /--dtb does not apply to the microvm machine/],
    ];
    for (const [args, message] of cases) {
      const r = await tsemu(['run', '-M', 'microvm', ...args]);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, message);
    }
    const virt = await tsemu(['run', '-M', 'virt', '-accel', 'kvm']);
    assert.equal(virt.code, 1);
    assert.match(virt.stderr, /the virt machine runs on tcg only/);
  });
});
