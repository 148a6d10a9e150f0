/**
 * tsemu's virt device models against QEMU's: one bare-metal M-mode program
 * (virt-devices-guest.c, built with Debian's riscv64 cross compiler) drives
 * the UART (divisor latch, FIFO, loopback, THR-empty interrupt), the CLINT
 * (mtime, timer and software interrupts), the PLIC (priorities, enables,
 * threshold, claim/complete), the goldfish RTC, the empty virtio-mmio slots
 * and the sifive_test finisher, and prints what it reads. It runs on
 * qemu-system-riscv64 -M virt -bios none and on tsemu's devices mapped at the
 * virt addresses behind a real hart (interpreter engine); both consoles must
 * match line for line, and both must end with the finisher's "fail, code 42".
 * It runs a third time on the whole virt machine (-bios none, both engines),
 * where the hart is on its own vCPU thread: the devices answer through the
 * mailbox, the UART's status reads from its register shadow and its console
 * bytes are posted (vcpu/mmio-shadow.ts), and the console must match again.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { MmioBus } from '../../src/emulator/bus/mmio-bus.js';
import { Clint } from '../../src/emulator/devices/aclint.js';
import { QueuedCharBackend } from '../../src/emulator/devices/char-backend.js';
import { GoldfishRtc } from '../../src/emulator/devices/goldfish-rtc.js';
import { SifiveTest, type TestFinisherEvent } from '../../src/emulator/devices/sifive-test.js';
import { Uart16550 } from '../../src/emulator/devices/uart16550.js';
import { EmptyVirtioSlot } from '../../src/emulator/devices/virtio-mmio-empty.js';
import { parseElf64 } from '../../src/emulator/loader/elf64.js';
import {
  VIRT_CLINT, VIRT_IRQ, VIRT_RTC, VIRT_TEST, VIRT_UART0, VIRT_VIRTIO_COUNT, virtPlicRegion,
  virtioSlotRegion,
} from '../../src/emulator/machines/virt-map.js';
import { runVirtMachine, virtPlic } from '../../src/emulator/machines/riscv-virt.js';
import type { EngineName } from '../../src/emulator/riscv/engine.js';
import { Hart } from '../../src/emulator/riscv/hart.js';
import { Interpreter } from '../../src/emulator/riscv/interp/interpreter.js';
import { RAM_GPA_BASE, RAM_HOST_BASE, memoryPagesFor } from '../../src/emulator/riscv/layout.js';
import { HartControl } from '../../src/emulator/vcpu/hart-control.js';
import { mustRun, requirePeer, runProgram, scratchDir } from '../helpers/peers.js';
import { GCC, writeLinkerScript } from '../riscv/toolchain.js';

const GUEST_SOURCE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'virt-devices-guest.c');
const RAM_BYTES = 16 << 20;
/** A bound on engine calls (10,000 instructions each), so a hung guest fails instead of spinning forever. */
const MAX_ENGINE_CALLS = 50_000;

async function buildGuest(dir: string): Promise<string> {
  requirePeer(GCC);
  const lds = await writeLinkerScript(dir);
  const elf = path.join(dir, 'guest.elf');
  await mustRun(
    runProgram(GCC, [
      '-O2', '-Wall', '-Werror', '-ffreestanding', '-nostdlib', '-static', '-march=rv64imac_zicsr', '-mabi=lp64',
      '-mcmodel=medany', '-fno-pic', '-Wl,--build-id=none', '-Wl,--no-warn-rwx-segments', '-T', lds, '-o', elf, GUEST_SOURCE,
    ]),
    'building the guest',
  );
  return elf;
}

/** Runs the guest on tsemu's devices; returns its console and the finisher event. */
function runOnTsemu(elfBytes: Uint8Array): { console: string; event: TestFinisherEvent | undefined } {
  const pages = memoryPagesFor(RAM_BYTES);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const control = new HartControl(memory);
  let consoleText = '';
  let event: TestFinisherEvent | undefined;

  const plicRegion = virtPlicRegion(1);
  const plic = virtPlic(1, control);
  const clint = new Clint({ memory, harts: 1, sink: control });
  clint.reset();
  const uart = new Uart16550(plic.irqLine(VIRT_IRQ.UART0), new QueuedCharBackend((bytes) => (consoleText += Buffer.from(bytes).toString('latin1'))));
  const bus = new MmioBus();
  bus.map(VIRT_UART0.base, VIRT_UART0.size, uart, 'uart0');
  bus.map(plicRegion.base, plicRegion.size, plic, 'plic');
  bus.map(VIRT_CLINT.base, VIRT_CLINT.size, clint, 'clint');
  bus.map(VIRT_RTC.base, VIRT_RTC.size, new GoldfishRtc(), 'rtc');
  bus.map(VIRT_TEST.base, VIRT_TEST.size, new SifiveTest((e) => (event = e)), 'test');
  for (let slot = 0; slot < VIRT_VIRTIO_COUNT; slot++) {
    const region = virtioSlotRegion(slot);
    bus.map(region.base, region.size, new EmptyVirtioSlot(), `virtio${slot}`);
  }

  const u8 = new Uint8Array(memory.buffer);
  const elf = parseElf64(elfBytes);
  for (const seg of elf.segments) {
    const host = RAM_HOST_BASE + (seg.paddr - RAM_GPA_BASE);
    u8.fill(0, host, host + seg.memSize);
    u8.set(seg.data, host);
  }
  const hart = new Hart({ memory, id: 0, ramBytes: RAM_BYTES, readMtime: () => clint.readMtime(), mmio: bus });
  hart.reset(elf.entry);
  const engine = new Interpreter(hart);
  for (let calls = 0; calls < MAX_ENGINE_CALLS && event === undefined; calls++) {
    clint.updateTimer(0);
    engine.run(10_000);
  }
  return { console: consoleText, event };
}

/** Runs the guest on the whole virt machine (its hart on a vCPU thread); returns its console and how the machine ended. */
async function runOnVirtMachine(elfBytes: Uint8Array, engine: EngineName): Promise<{ console: string; exit: unknown }> {
  let consoleText = '';
  const serial = new QueuedCharBackend((bytes) => (consoleText += Buffer.from(bytes).toString('latin1')));
  const exit = await runVirtMachine({ ramBytes: RAM_BYTES, harts: 1, engine, kernel: elfBytes, bios: 'none', serial }, { noReboot: true });
  return { console: consoleText, exit };
}

test('a bare-metal program reads the same from tsemu’s virt devices as from QEMU’s', async () => {
  requirePeer('qemu-system-riscv64');
  const { dir, cleanup } = await scratchDir();
  try {
    const elf = await buildGuest(dir);
    const elfBytes = new Uint8Array(await readFile(elf));
    // QEMU's serial goes to a file, not to stdout: its 16550 gives up on a byte whose
    // chardev write keeps failing, and a console read through a pipe on a busy CI
    // machine once lost two bytes that way.
    const consoleFile = path.join(dir, 'qemu-console.txt');
    const qemu = await runProgram('qemu-system-riscv64', [
      '-M', 'virt', '-smp', '1', '-m', '128M', '-bios', 'none', '-display', 'none', '-monitor', 'none',
      '-serial', `file:${consoleFile}`, '-kernel', elf,
    ]);
    const qemuConsole = await readFile(consoleFile, 'latin1');
    assert.equal(qemu.code, 42, `QEMU: the guest ends with fail code 42\n${qemuConsole}${qemu.stderr}`);
    assert.match(qemuConsole, /^virt devices\n[^]*\ndone\n$/, 'QEMU console');

    const ours = runOnTsemu(elfBytes);
    assert.deepEqual(ours.event, { kind: 'fail', code: 42 }, `tsemu console:\n${ours.console}`);
    assert.deepEqual(ours.console.split('\n'), qemuConsole.split('\n'));
    for (const engine of ['interp', 'jit'] as const) {
      const machine = await runOnVirtMachine(elfBytes, engine);
      assert.deepEqual(machine.exit, { kind: 'poweroff', code: 42 }, `virt machine (${engine}) console:\n${machine.console}`);
      assert.deepEqual(machine.console.split('\n'), qemuConsole.split('\n'), `virt machine (${engine})`);
    }
  } finally {
    await cleanup();
  }
});
