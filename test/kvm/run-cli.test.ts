/**
 * `tsemu run -M microvm` from the built CLI: the x86 test guest (built here with
 * the host's gcc and binutils) boots on this host's KVM with QEMU's single-dash
 * spellings, prints its marker on the stdio console and powers off with exit 0,
 * and with -trace prints the start-up trace events on stderr in QEMU's log
 * shape (PID@SECONDS.MICROSECONDS:name args), in boot order; options that do not
 * apply to microvm are clear errors.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tsemu } from '../helpers/peers.js';
import { x86GuestForTests } from './x86-guest.js';

const bzImage = x86GuestForTests();

describe('tsemu run -M microvm', () => {
  it('boots the x86 test guest on KVM with -smp 2 and exits 0 on ACPI poweroff, tracing its start-up', async () => {
    const r = await tsemu([
      'run', '-M', 'microvm', '-m', '128M', '-smp', '2', '-kernel', bzImage(), '-append', 'console=ttyS0', '-trace', 'microvm_*', '-trace', 'enable=kvm_vcpu_first_*',
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /smp: 2 of 2 cpus up/);
    assert.match(r.stdout, /TSEMU-X86-GUEST-OK/);
    const events = [...r.stderr.matchAll(/^(\d+)@(\d+\.\d{6}):(\w+)(.*)$/gm)];
    const names = events.map((e) => e[3] + (e[3]!.startsWith('kvm_') ? e[4]!.slice(0, 6) : ''));
    assert.deepEqual(names.filter((n) => !n.includes('cpu 1')), [
      'microvm_create', 'microvm_kvm_ready', 'microvm_loaded', 'microvm_vcpus_ready', 'kvm_vcpu_first_run cpu 0',
      'kvm_vcpu_first_exit cpu 0', 'microvm_exit',
    ], r.stderr);
    assert.ok(names.includes('kvm_vcpu_first_exit cpu 1'), r.stderr);
    // One thread's events are in time order (threads' lines may interleave by microseconds).
    for (const thread of [/^microvm_/, /^kvm_vcpu_first_\w+ cpu 0/]) {
      const times = events.filter((e) => thread.test(e[3]! + e[4]!)).map((e) => Number(e[2]));
      assert.ok(times.every((t, i) => i === 0 || t >= times[i - 1]!), r.stderr);
    }
    assert.match(r.stderr, /:microvm_exit poweroff$/m);
  });

  it('-trace help lists the events; a pattern that matches none is an error', async () => {
    const help = await tsemu(['run', '-M', 'microvm', '-trace', 'help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^microvm_create: /m);
    assert.match(help.stdout, /^kvm_vcpu_first_run: /m);
    const bad = await tsemu(['run', '-M', 'microvm', '-kernel', bzImage(), '-trace', 'nosuch*']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /-trace: no trace event matches 'nosuch\*'/);
  });

  it('refuses tcg, a missing kernel and the virt-only options', async () => {
    const cases: [string[], RegExp][] = [
      [['-accel', 'tcg', '-kernel', bzImage()], /the microvm machine runs on kvm only/],
      [[], /the microvm machine needs --kernel/],
      [['-kernel', bzImage(), '-bios', 'none'], /--bios does not apply to the microvm machine/],
      [['-kernel', bzImage(), '-dtb', 'x.dtb'], /--dtb does not apply to the microvm machine/],
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
