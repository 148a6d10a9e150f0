/**
 * KVM bindings on this host's /dev/kvm: the capability checks' errors, struct
 * round trips through the kernel, and a vCPU thread running hand-assembled
 * code: port I/O both ways, MMIO both ways, the kick out of a halted
 * KVM_RUN, a triple fault reported with the registers; ioeventfd doorbells
 * that the guest's matching writes ring in the kernel (no exit reaches the
 * main thread's handlers, unmatched writes still do) and an irqfd whose
 * signal KVM takes. (The x86 test guest takes its UART interrupts through an
 * irqfd and powers off through the S5 doorbell: microvm-guest.test.ts.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KVM_CAP, decodeSregs, encodeSregs } from '../../src/emulator/accel/kvm/abi.js';
import { readFileSync } from 'node:fs';
import { KvmSystem, KvmUnavailableError, hostHasHardwareVirtualization } from '../../src/emulator/accel/kvm/kvm.js';
import { mapAnonymous } from '../../src/emulator/accel/kvm/sys.js';
import { prepareKvmVcpuThread, type IoHandlers } from '../../src/emulator/accel/kvm/vcpu-thread.js';
import { Doorbell, EventFd } from '../../src/emulator/accel/kvm/eventfd.js';
import { MAX_POSTED_WRITES } from '../../src/emulator/accel/kvm/vcpu-protocol.js';
import { bootSregs, writeBootPageTables } from '../../src/emulator/x86/long-mode.js';

describe('KVM capability checks', () => {
  it('names a missing device node', () => {
    assert.throws(() => KvmSystem.open({ path: '/nonexistent/kvm' }), (err: Error) =>
      err instanceof KvmUnavailableError && /does not exist: this host offers no KVM/.test(err.message));
  });

  it('names a device that is not KVM', () => {
    assert.throws(() => KvmSystem.open({ path: '/dev/null' }), (err: Error) =>
      err instanceof KvmUnavailableError && /is not a KVM device/.test(err.message));
  });

  it('tells hardware virtualization from a software KVM by the CPU flags', () => {
    const flags = readFileSync('/proc/cpuinfo', 'latin1');
    assert.equal(hostHasHardwareVirtualization(), /\b(vmx|svm)\b/.test(flags));
    assert.equal(hostHasHardwareVirtualization('/nonexistent'), false);
  });

  it('opens /dev/kvm with the capabilities the machine needs', () => {
    const kvm = KvmSystem.open();
    try {
      assert.ok(kvm.vcpuMmapSize >= 4096);
      for (const cap of ['IRQCHIP', 'IRQFD', 'IOEVENTFD'] as const) assert.ok(kvm.checkExtension(KVM_CAP[cap]) > 0, cap);
      assert.ok(kvm.maxVcpus() >= 2);
      const cpuid = kvm.supportedCpuid();
      assert.ok(cpuid.some((e) => e.function === 0) && cpuid.some((e) => e.function === 1));
    } finally {
      kvm.close();
    }
  });
});

/** A VM with 2 MiB of RAM, identity-mapped long mode, `code` at 1 MiB run by vCPU 0. */
function vmWith(code: number[]) {
  const kvm = KvmSystem.open();
  const vm = kvm.createVm();
  const size = 4 << 20;
  const ram = mapAnonymous(size);
  const u8 = new Uint8Array(ram.buffer);
  vm.addMemory(0, size, ram.address);
  vm.setTssAddress(0xfffbd000);
  vm.createIrqchip();
  writeBootPageTables({ read: (gpa, dst) => dst.set(u8.subarray(gpa, gpa + dst.length)), write: (gpa, src) => u8.set(src, gpa) });
  u8.set(code, 0x100000);
  const vcpu = vm.createVcpu(0);
  vcpu.setCpuid(kvm.supportedCpuid());
  vcpu.updateSregs(bootSregs);
  vcpu.setRegs({ rip: 0x100000, rsp: 0x80000, rflags: 2 });
  const close = (): void => {
    vm.close();
    ram.unmap();
    kvm.close();
  };
  return { kvm, vm, vcpu, close };
}

function recorder() {
  const log: string[] = [];
  const handlers: IoHandlers = {
    portRead: (port, size) => (log.push(`in ${port.toString(16)}/${size}`), 0x1234_5678 >>> (32 - size * 8)),
    portWrite: (port, size, value) => void log.push(`out ${port.toString(16)}/${size}=${value.toString(16)}`),
    mmioRead: (address, data) => (log.push(`read ${address.toString(16)}/${data.length}`), data.fill(0xab)),
    mmioWrite: (address, data) => void log.push(`write ${address.toString(16)}=${Buffer.from(data).toString('hex')}`),
  };
  return { log, handlers };
}

describe('KVM vCPU thread', () => {
  it('round-trips the special registers through the kernel', () => {
    const { vcpu, close } = vmWith([0xf4]);
    try {
      const s = vcpu.getSregs();
      assert.equal(s.cs.selector, 0x10);
      assert.equal(s.cs.l, 1);
      assert.equal(s.cr3, 0x9000);
      assert.equal(s.efer & 0x500, 0x500);
      assert.deepEqual(decodeSregs(encodeSregs(s, new Uint8Array(312))), s);
    } finally {
      close();
    }
  });

  it('serves port I/O and MMIO on the main thread, in order, and stops a halted vCPU', async () => {
    const code = [
      0x66, 0xba, 0xf8, 0x03, //       mov dx, 0x3f8
      0xb0, 0x41, 0xee, //             mov al, 'A'; out dx, al
      0xed, //                         in eax, dx
      0x89, 0xc3, //                   mov ebx, eax
      0x66, 0xef, //                   out dx, ax
      0x48, 0xb9, 0, 0, 0, 0xd0, 0, 0, 0, 0, // mov rcx, 0xd0000000
      0x8b, 0x01, //                   mov eax, [rcx]
      0x89, 0x41, 0x08, //             mov [rcx+8], eax
      0xfa, 0xf4, 0xeb, 0xfc, //       cli; hlt; jmp back to cli
    ];
    const { kvm, vcpu, close } = vmWith(code);
    const { log, handlers } = recorder();
    const thread = prepareKvmVcpuThread().run(vcpu, kvm.vcpuMmapSize, handlers);
    while (log.length < 5) await new Promise((r) => setTimeout(r, 10));
    thread.stop();
    assert.deepEqual(await thread.ended, { kind: 'stopped' });
    assert.deepEqual(log, ['out 3f8/1=41', 'in 3f8/4', 'out 3f8/2=5678', 'read d0000000/4', 'write d0000008=abababab']);
    assert.equal(vcpu.getRegs().rbx, 0x1234_5678);
    close();
  });

  it('holds a flooding guest at MAX_POSTED_WRITES unapplied writes, and loses none', async () => {
    const code = [
      0xb9, 0x88, 0x13, 0x00, 0x00, // mov ecx, 5000
      0x66, 0xba, 0xf8, 0x03, //       mov dx, 0x3f8
      0x88, 0xc8, 0xee, //             L: mov al, cl; out dx, al
      0xe2, 0xfb, //                   loop L
      0xfa, 0xf4, 0xeb, 0xfc, //       cli; hlt; jmp back to cli
    ];
    const { kvm, vcpu, close } = vmWith(code);
    const values: number[] = [];
    let remainingWhileBlocked = -1;
    const { handlers } = recorder();
    handlers.portWrite = (_port, _size, value) => {
      if (values.length === 0) {
        // Keep the main thread busy: the worker posts until the bound and then waits.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
        remainingWhileBlocked = vcpu.getRegs().rcx;
      }
      values.push(value);
    };
    const thread = prepareKvmVcpuThread().run(vcpu, kvm.vcpuMmapSize, handlers);
    while (values.length < 5000) await new Promise((r) => setTimeout(r, 10));
    thread.stop();
    assert.deepEqual(await thread.ended, { kind: 'stopped' });
    assert.equal(remainingWhileBlocked, 5000 - (MAX_POSTED_WRITES - 1));
    assert.deepEqual(values, Array.from({ length: 5000 }, (_, i) => (5000 - i) & 0xff));
    close();
  });

  it('sends a thread that never ran away', async () => {
    await prepareKvmVcpuThread().cancel();
  });

  it('ends the vCPU with the reason when a device model throws', async () => {
    const code = [0x66, 0xba, 0xf8, 0x03, 0xec, 0xfa, 0xf4, 0xeb, 0xfc]; // in al, dx; cli; hlt
    const { kvm, vcpu, close } = vmWith(code);
    const { handlers } = recorder();
    handlers.portRead = () => {
      throw new Error('model bug');
    };
    const end = await prepareKvmVcpuThread().run(vcpu, kvm.vcpuMmapSize, handlers).ended;
    assert.deepEqual(end, { kind: 'error', message: 'vCPU 0: device failed: model bug' });
    close();
  });

  // Hardware KVM exits with SHUTDOWN (a reset, as on a PC); kvm-pvm cannot deliver through an
  // empty IDT and reports an emulation failure instead. Either way the host names it.
  it('ends the vCPU on a triple fault with a clear report', async () => {
    // lidt of an empty IDT, then int3: no handler, no double-fault handler, shutdown.
    const code = [0x0f, 0x01, 0x1c, 0x25, 0x00, 0x00, 0x01, 0x00, 0xcc];
    const { kvm, vcpu, close } = vmWith([...code, ...new Array(0x10000 - code.length).fill(0x90)]);
    const thread = prepareKvmVcpuThread().run(vcpu, kvm.vcpuMmapSize, recorder().handlers);
    const end = await thread.ended;
    const report = end.kind === 'reset' ? end.why : end.kind === 'error' ? end.message : '';
    assert.match(report, /triple-faulted \(rip=0x|KVM internal error, suberror 1 .*rip=0x100008/, JSON.stringify(end));
    close();
  });
});

describe('KVM eventfds', () => {
  it('rings doorbells on matching port and MMIO writes without an exit to the main thread', async () => {
    const code = [
      0x66, 0xba, 0x04, 0x06, //       mov dx, 0x604
      0x66, 0xb8, 0x00, 0x34, //       mov ax, 0x3400
      0x66, 0xef, 0x66, 0xef, //       out dx, ax (twice: matched)
      0x66, 0xb8, 0x34, 0x12, //       mov ax, 0x1234
      0x66, 0xef, //                   out dx, ax (not matched: exits)
      0x48, 0xb9, 0, 0, 0, 0xd0, 0, 0, 0, 0, // mov rcx, 0xd0000000
      0x89, 0x01, //                   mov [rcx], eax (matched, any value)
      0xfa, 0xf4, 0xeb, 0xfc, //       cli; hlt; jmp back to cli
    ];
    const { kvm, vm, vcpu, close } = vmWith(code);
    const rings = { pio: 0, mmio: 0 };
    const fail = (err: Error): never => assert.fail(err);
    const pio = Doorbell.start(vm, 'pio doorbell', [{ space: 'pio', address: 0x604, length: 2, datamatch: 0x3400 }], (n) => (rings.pio += n), fail);
    const mmio = Doorbell.start(vm, 'mmio doorbell', [{ space: 'mmio', address: 0xd000_0000, length: 4 }], (n) => (rings.mmio += n), fail);
    const { log, handlers } = recorder();
    const thread = prepareKvmVcpuThread().run(vcpu, kvm.vcpuMmapSize, handlers);
    while (rings.pio < 2 || rings.mmio < 1 || log.length < 1) await new Promise((r) => setTimeout(r, 10));
    thread.stop();
    assert.deepEqual(await thread.ended, { kind: 'stopped' });
    await Promise.all([pio.stop(), mmio.stop()]);
    assert.deepEqual(rings, { pio: 2, mmio: 1 });
    assert.deepEqual(log, ['out 604/2=1234']);
    close();
  });

  it('binds an irqfd to a GSI: KVM takes each signal', () => {
    const { vm, close } = vmWith([0xf4]);
    const event = EventFd.create('test irqfd');
    try {
      event.signal();
      assert.equal(event.take(), 1, 'an unbound eventfd keeps its count');
      vm.addIrqfd(event.fd, 4);
      event.signal();
      event.signal();
      assert.equal(event.take(), 0, 'KVM consumed the signals');
    } finally {
      event.close();
      close();
    }
  });
});
