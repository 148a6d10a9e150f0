/**
 * virtio devices seen by a real guest: the bundled RISC-V kernel (virtio-mmio,
 * virtio-blk and virtio-console built in) on `tsemu run -M virt`, driven
 * through the busybox shell of the bundled initramfs.
 *
 * A qcow2 overlay (made by tsemu img create) over a qcow2 base holding a known
 * pattern: the guest reads the pattern from /dev/vda, writes another one with
 * fsync and powers off. Afterwards qemu-img check finds the overlay clean, the
 * base is unchanged, and qemu-io reads the new pattern from the overlay, whose
 * map shows that range allocated in the overlay itself. The same boot has a
 * virtio-rng (device ID 4; the guest reads 32 random bytes from /dev/hwrng
 * through the kernel's virtio-rng driver) and a virtconsole on a
 * socket chardev: the guest writes a line to /dev/hvc1 while reading from it,
 * the host answers that line with another, which the guest prints.
 * With -snapshot the guest sees its own writes but the overlay file is
 * byte-for-byte unchanged.
 *
 * The file-system proof: an ext4 image made by mke2fs -d, converted
 * to a qcow2 base, under a qcow2 overlay; the guest mounts it, reads the
 * known file, writes a new one, syncs and unmounts. Then the overlay checks
 * clean, the base is unchanged, e2fsck finds the file system clean and
 * debugfs reads the new file from the overlay's content. Deadlines only
 * bound the waits for the guest.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BUNDLED_GUEST, consoleTail, requireGuest, watchBoot, type BootRun } from '../guests/riscv-guests.js';
import { ROOT, qemuImg, qemuIo, requirePeer, runProgram, tsemu } from '../helpers/peers.js';

const DEADLINE_SECONDS = 900;
const md5 = (bytes: Uint8Array): string => createHash('md5').update(bytes).digest('hex');
const fill = (byte: number, length: number): Uint8Array => new Uint8Array(length).fill(byte);

async function boot(args: readonly string[], commands: readonly string[]): Promise<BootRun> {
  requireGuest(BUNDLED_GUEST);
  const argv = [
    path.join(ROOT, 'bin/tsemu.js'), 'run', '-M', 'virt', '-m', '256M', '--kernel', BUNDLED_GUEST.kernel,
    '--initrd', BUNDLED_GUEST.initrd, '--append', 'console=ttyS0', '--serial', 'stdio', '--no-reboot', ...args,
  ];
  const run = await watchBoot(process.execPath, argv, {
    deadlineSeconds: DEADLINE_SECONDS,
    typeAfterMarker: [...commands, 'sync', 'poweroff -f', ''].join('\n'),
  });
  assert.equal(run.code, 0, `tsemu exit code\n--- console (tail) ---\n${consoleTail(run)}`);
  return run;
}

/** The value a guest command printed after `label` (the typed command line does not match: its label has no value after it). */
function printed(run: BootRun, label: string, value: RegExp): string {
  const m = new RegExp(`${label} (${value.source})`).exec(run.console.replace(/\r/g, ''));
  assert.ok(m, `no '${label}' line\n--- console (tail) ---\n${consoleTail(run)}`);
  return m[1]!;
}

/** A TCP peer for the virtconsole: answers the guest's HELLO-HVC line with PING-FROM-HOST. */
async function consolePeer(): Promise<{ port: number; received: () => string; close: () => void }> {
  let received = '';
  const server = net.createServer((socket) => {
    socket.on('data', (chunk) => {
      received += chunk.toString();
      if (received.includes('HELLO-HVC') && !received.includes('\u0000answered')) {
        received += '\u0000answered';
        socket.write('PING-FROM-HOST\n');
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, received: () => received, close: () => server.close() };
}

const READ = (label: string, offsetKiB: number): string =>
  `echo ${label} $(dd if=/dev/vda bs=1024 skip=${offsetKiB} count=64 2>/dev/null | md5sum)`;
const WRITE = (octal: string, offsetKiB: number): string =>
  `head -c 65536 /dev/zero | tr '\\000' '\\${octal}' | dd of=/dev/vda bs=1024 seek=${offsetKiB} conv=fsync 2>/dev/null`;

test('guest reads and writes a qcow2 overlay through virtio-blk; rng and console enumerate; -snapshot leaves the overlay alone', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'tsemu-virtio-'));
  try {
    const base = path.join(dir, 'base.qcow2');
    const overlay = path.join(dir, 'overlay.qcow2');
    const peer = await consolePeer();
    assert.equal((await qemuImg(['create', '-q', '-f', 'qcow2', base, '4M'])).code, 0);
    assert.equal((await qemuIo(['-c', 'write -q -P 0xab 0 64k', base])).code, 0);
    const created = await tsemu(['img', 'create', '-f', 'qcow2', '-b', base, '-F', 'qcow2', overlay]);
    assert.equal(created.code, 0, created.stderr);
    const baseBefore = md5(await readFile(base));

    const run = await boot(
      [
        '--drive', `file=${overlay},if=virtio`, '--device', 'virtio-rng',
        '--chardev', `socket,id=c0,host=127.0.0.1,port=${peer.port}`, '--device', 'virtconsole,chardev=c0',
      ],
      [
        "echo DEVICES $(cat /sys/bus/virtio/devices/*/device | tr '\\n' ' ')",
        READ('READ-MD5', 0),
        WRITE('125', 128),
        // hvc0 is the kernel's SBI console (CONFIG_HVC_RISCV_SBI); the virtio console is the next one.
        '(read line < /dev/hvc1; echo CONSOLE-GOT $line) & sleep 1; echo HELLO-HVC > /dev/hvc1; wait',
        "echo HWRNG $(dd if=/dev/hwrng bs=32 count=1 2>/dev/null | od -An -tx1 | tr -d ' \\n')",
      ],
    );
    assert.equal(printed(run, 'READ-MD5', /[0-9a-f]{32}/), md5(fill(0xab, 65536)), 'the guest reads the base pattern');
    assert.deepEqual(printed(run, 'DEVICES', /(?:0x\d{4} ?)+/).trim().split(' ').sort(), ['0x0002', '0x0003', '0x0004']);
    peer.close();
    assert.match(peer.received(), /HELLO-HVC/);
    assert.equal(printed(run, 'CONSOLE-GOT', /[A-Z][A-Z-]*/), 'PING-FROM-HOST');
    assert.notEqual(printed(run, 'HWRNG', /[0-9a-f]{64}/), '00'.repeat(32), '/dev/hwrng gives 32 random bytes');

    const check = await qemuImg(['check', overlay]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /No errors were found/);
    assert.equal(md5(await readFile(base)), baseBefore, 'the base is unchanged');
    const verify = await qemuIo(['-c', 'read -P 0x55 128k 64k', '-c', 'read -P 0xab 0 64k', overlay]);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    assert.doesNotMatch(verify.stdout, /verification failed/);
    const map = JSON.parse((await qemuImg(['map', '--output=json', overlay])).stdout) as { start: number; depth: number; data: boolean }[];
    assert.ok(map.some((e) => e.start === 128 * 1024 && e.depth === 0 && e.data), `the written range is in the overlay: ${JSON.stringify(map)}`);

    const overlayBefore = md5(await readFile(overlay));
    const snap = await boot(['--drive', `file=${overlay},if=virtio`, '-snapshot'], [WRITE('146', 128), READ('SNAP-MD5', 128)]);
    assert.equal(printed(snap, 'SNAP-MD5', /[0-9a-f]{32}/), md5(fill(0x66, 65536)), 'the guest sees its writes');
    assert.equal(md5(await readFile(overlay)), overlayBefore, 'the overlay is unchanged after -snapshot');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('guest mounts ext4 from a qcow2 overlay, reads a known file and writes a new one', async () => {
  requirePeer('mke2fs');
  requirePeer('debugfs');
  requirePeer('e2fsck');
  const dir = await mkdtemp(path.join(tmpdir(), 'tsemu-virtio-ext4-'));
  try {
    const tree = path.join(dir, 'tree');
    await mkdir(tree);
    await writeFile(path.join(tree, 'known.txt'), 'known content 42\n');
    const raw = path.join(dir, 'fs.raw');
    const base = path.join(dir, 'base.qcow2');
    const overlay = path.join(dir, 'overlay.qcow2');
    const made = await runProgram('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', tree, raw, '16M']);
    assert.equal(made.code, 0, made.stderr);
    assert.equal((await qemuImg(['convert', '-O', 'qcow2', raw, base])).code, 0);
    assert.equal((await tsemu(['img', 'create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', overlay])).code, 0);
    const baseBefore = md5(await readFile(base));

    const run = await boot(['--drive', `file=${overlay},if=virtio`], [
      'mkdir -p /mnt',
      'mount -t ext4 /dev/vda /mnt',
      'echo KNOWN $(cat /mnt/known.txt | tr " " _)',
      'echo written by the guest > /mnt/new.txt',
      'sync',
      'umount /mnt',
      'echo UMOUNT $?',
    ]);
    assert.equal(printed(run, 'KNOWN', /known\S*/), 'known_content_42');
    assert.equal(printed(run, 'UMOUNT', /\d+/), '0');

    const check = await qemuImg(['check', overlay]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.equal(md5(await readFile(base)), baseBefore, 'the base is unchanged');
    const flat = path.join(dir, 'after.raw');
    assert.equal((await qemuImg(['convert', '-O', 'raw', overlay, flat])).code, 0);
    const fsck = await runProgram('e2fsck', ['-fn', flat]);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
    const cat = await runProgram('debugfs', ['-R', 'cat /new.txt', flat]);
    assert.equal(cat.stdout, 'written by the guest\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
