import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { ROOT, mustRun, requirePeer, runProgram, scratchDir, tsemu } from '../helpers/peers.js';
import { buildGuest } from './guests.js';

const TSEMU_BIN = path.join(ROOT, 'bin/tsemu.js');

test('tsemu run --kernel prog.elf: the guest prints through the UART and SBI DBCN, powers off, exit 0', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const elf = await buildGuest(dir, 'HELLO');
    const r = await tsemu(['run', '--kernel', elf]);
    assert.equal(r.stdout, 'hello from the UART\nhello from SBI DBCN\n', r.stderr);
    assert.equal(r.code, 0);
    const qemuStyle = await tsemu(['run', '-M', 'virt', '-m', '64', '-smp', '1', '-kernel', elf, '-nographic', '-accel', 'tcg,engine=interp']);
    assert.equal(qemuStyle.stdout, 'hello from the UART\nhello from SBI DBCN\n', qemuStyle.stderr);
  } finally {
    await cleanup();
  }
});

test('tsemu run --bios opensbi: Debian OpenSBI (fw_dynamic, M-mode) boots the guest on 2 harts and powers it off', async () => {
  requirePeer('riscv64-linux-gnu-gcc');
  const { dir, cleanup } = await scratchDir();
  try {
    const elf = await buildGuest(dir, 'HELLO');
    const r = await tsemu(['run', '--bios', 'opensbi', '-smp', '2', '--kernel', elf]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /OpenSBI v\d/);
    assert.match(r.stdout, /Platform HART Count\s+: 2/);
    assert.match(r.stdout, /Domain0 Next Address\s+: 0x0*80200000/);
    assert.match(r.stdout, /hello from the UART\n/);
  } finally {
    await cleanup();
  }
});

test('tsemu run --serial file:PATH writes the console to the file', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const elf = await buildGuest(dir, 'HELLO');
    const log = path.join(dir, 'console.log');
    const r = await tsemu(['run', '--kernel', elf, '--serial', `file:${log}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(await readFile(log, 'utf8'), 'hello from the UART\nhello from SBI DBCN\n');
  } finally {
    await cleanup();
  }
});

test('tsemu run --serial tcp:127.0.0.1:0,server waits for a client, then the console flows to it', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const elf = await buildGuest(dir, 'HELLO');
    const child = spawn(process.execPath, [TSEMU_BIN, 'run', '--kernel', elf, '--serial', 'tcp:127.0.0.1:0,server'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    const port = await new Promise<number>((resolve, reject) => {
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
        const m = /waiting for connection on: tcp:127\.0\.0\.1:(\d+),server/.exec(stderr);
        if (m) resolve(Number(m[1]));
      });
      child.on('close', () => reject(new Error(`tsemu exited before listening: ${stderr}`)));
    });
    const socket = net.connect({ host: '127.0.0.1', port });
    let received = '';
    socket.setEncoding('utf8').on('data', (d: string) => (received += d));
    const socketClosed = new Promise((r) => socket.on('close', r));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    await socketClosed;
    assert.equal(code, 0, stderr);
    assert.equal(received, 'hello from the UART\nhello from SBI DBCN\n');
  } finally {
    await cleanup();
  }
});

test('Ctrl-A escapes on stdio: C-a c answers that the monitor is not there, C-a x quits with exit 0', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const elf = await buildGuest(dir, 'IDLE');
    const child = spawn(process.execPath, [TSEMU_BIN, 'run', '--kernel', elf], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (stdout === 'i\n') child.stdin.write('\x01c\x01x');
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0);
    assert.match(stdout, /^i\n\r\ntsemu: the monitor is not available yet\r\n\r\ntsemu: terminated\r\n$/);
  } finally {
    await cleanup();
  }
});

test('tsemu run --dump-dtb writes the generated device tree (dtc reads it back, bootargs included)', async () => {
  requirePeer('dtc');
  const { dir, cleanup } = await scratchDir();
  try {
    const elf = await buildGuest(dir, 'HELLO');
    const dtb = path.join(dir, 'virt.dtb');
    const r = await tsemu(['run', '--kernel', elf, '-smp', '2', '--append', 'console=ttyS0 hello', '--dump-dtb', dtb]);
    assert.equal(r.code, 0, r.stderr);
    const dts = (await mustRun(runProgram('dtc', ['-I', 'dtb', '-O', 'dts', dtb]), 'dtc')).stdout;
    assert.match(dts, /bootargs = "console=ttyS0 hello"/);
    assert.match(dts, /cpu@1 \{/);
    const qemuSpelling = path.join(dir, 'qemu-spelling.dtb');
    assert.equal((await tsemu(['run', '-M', `virt,dumpdtb=${qemuSpelling}`, '--kernel', elf, '-smp', '2', '--append', 'console=ttyS0 hello'])).code, 0);
    assert.deepEqual(await readFile(qemuSpelling), await readFile(dtb));
    const again = await tsemu(['run', '--kernel', elf, '--dtb', dtb]);
    assert.equal(again.stdout, 'hello from the UART\nhello from SBI DBCN\n', again.stderr);
  } finally {
    await cleanup();
  }
});

test('tsemu run: wrong arguments are clear errors with exit 1', async () => {
  const missing = await tsemu(['run', '--kernel', '/nonexistent/Image']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^tsemu: could not load kernel '\/nonexistent\/Image'/);
  const machine = await tsemu(['run', '-M', 'pc', '--kernel', '/nonexistent/Image']);
  assert.match(machine.stderr, /unsupported machine type 'pc'/);
  const machineOption = await tsemu(['run', '-M', 'virt,acpi=off', '--kernel', '/nonexistent/Image']);
  assert.match(machineOption.stderr, /no option 'acpi'/);
  const memory = await tsemu(['run', '-m', '8G', '--kernel', TSEMU_BIN]);
  assert.equal(memory.code, 1);
  assert.match(memory.stderr, /does not fit/);
  const accel = await tsemu(['run', '--accel', 'kvm', '--kernel', TSEMU_BIN]);
  assert.match(accel.stderr, /tcg only/);
});
