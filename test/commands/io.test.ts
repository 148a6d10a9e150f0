import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { ROOT, mustRun, qemuImg, qemuIo, requirePeer, scratchDir, tsemu, type RunResult } from '../helpers/peers.js';
import { qemuIoNoStdin, startLockHolder, stopChild } from '../helpers/locks.js';

/** Output with the timing part of each statistics line taken out (it differs run to run). */
function untimed(text: string): string {
  return text
    .replace(/; [0-9:.]+ sec \(.*\)$/gm, '; <time>')
    .replace(/^([0-9]+,1,)[0-9:.]+,.*$/gm, '$1<time>');
}

function commandArgs(script: readonly string[]): string[] {
  return script.flatMap((c) => ['-c', c]);
}

/** Runs the script with qemu-io on one copy and tsemu io on another; both must agree. */
async function assertSameAsQemuIo(image: string, format: string, script: readonly string[]): Promise<RunResult> {
  const theirs = `${image}.qemu`;
  await copyFile(image, theirs);
  const q = await qemuIo(['-f', format, ...commandArgs(script), theirs]);
  const t = await tsemu(['io', '-f', format, ...commandArgs(script), image]);
  assert.equal(untimed(t.stdout), untimed(q.stdout.replaceAll(theirs, image)), 'stdout');
  assert.equal(t.stderr.replaceAll('tsemu: ', ''), q.stderr.replaceAll('qemu-io: ', '').replaceAll(theirs, image), 'stderr');
  assert.equal(t.code, q.code, 'exit code');
  const cmp = await qemuImg(['compare', '-f', format, '-F', format, image, theirs]);
  assert.equal(cmp.code, 0, `images differ after the script: ${cmp.stdout}`);
  return t;
}

const RAW_SCRIPT = [
  'write -P 0xab 0 64k', 'write -z 128k 4k', 'read -P 0xab 0 64k', 'read -P 0xac 0 512', 'read -v 8 40',
  'discard 256k 64k', 'flush', 'map', 'length', 'info', 'read 0 2M', 'read abc 1', 'read 0', 'foo',
  'read -x 0 1', 'write -u 0 4k', 'write -c 0 64k', 'read 0 1.5k', 'read 0 3G', 'read -C 0 512',
  'write -P 0x100 0 1', 'read -l 5 -P 0 0 2', 'read 0 2M junk', 'w -q 0 1', 'r -P 0xcd 0 1',
  'write -z -P 1 0 1', 'read -s 1 -l 2 -P 0xab 0 16', 'write -f -P 7 1000 24', 'read -q -P 7 1000 24',
  'write -z -u 512k 64k', 'read -P 0 512k 64k', 'flush x', 'd 0 4096',
  'writev -P 3 0 512 1k', 'readv -P 3 0 512 1k', 'readv -v 0 8 8', 'readv -P 4 0 512', 'writev -q 0 1', 'readv 0',
  'readv -C 0 512 512', 'writev 0 abc', 'readv -x 0 1', 'writev -f 2M 512', 'readv 0 1 junk',
  'read 0 16E', 'read 0 99999999999999999999', 'read 9P 1', 'read 8E 1', 'read 0 1.5', 'read 0 1b', 'write -z 0 16E',
  'write -z 1M 8P', 'discard 0 4G', 'write 0 3G', 'write -z 0 3G', 'write -z -n 0 3G', 'write -z -n 0 1M',
  'write -z -n 1M 8P', 'readv 0 3G', 'writev 0 1 3G', 'sleep abc', 'sleep 1 2', 'help foo',
  'truncate -m falloc 2M', 'length', 'map', 'truncate -m bogus 3M', 'truncate -m full 3M', 'alloc 2M 1M', 'truncate 1M',
  'length', 'truncate abc', 'alloc 0', 'alloc 512k 1M', 'alloc 4M', 'read 1M 2G', 'write 1M 2147483136',
  'readv 0 1G 1G', 'writev 1 2147483136', 'write -c 0 2G', 'writev 0 1G 1G 1G',
];

test('tsemu io on a raw image prints what qemu-io prints and leaves the same image', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const image = path.join(dir, 'disk.raw');
    await mustRun(qemuImg(['create', '-q', '-f', 'raw', image, '1M']), 'qemu-img create');
    const r = await assertSameAsQemuIo(image, 'raw', RAW_SCRIPT);
    assert.equal(r.code, 1, 'a failed command makes the exit code 1');
    assert.match(r.stdout, /^Pattern verification failed at offset 0, 512 bytes$/m);
    assert.match(r.stdout, /^1 MiB \(0x100000\) bytes {5}allocated at offset 0 bytes \(0x0\)$/m);
  } finally {
    await cleanup();
  }
});

test('a script of successful commands exits 0, like qemu-io', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const image = path.join(dir, 'ok.raw');
    await mustRun(qemuImg(['create', '-q', '-f', 'raw', image, '2M']), 'qemu-img create');
    const r = await assertSameAsQemuIo(image, 'raw', ['write -P 1 0 1M', 'read -P 1 0 1M', 'length', 'map']);
    assert.equal(r.code, 0);
  } finally {
    await cleanup();
  }
});

test('tsemu io on a qcow2 overlay: map, info, zero/compressed writes, discard match qemu-io', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const base = path.join(dir, 'base.qcow2');
    const overlay = path.join(dir, 'overlay.qcow2');
    await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', base, '4M']), 'qemu-img create');
    await mustRun(qemuIo(['-f', 'qcow2', '-c', 'write -P 1 0 1M', base]), 'qemu-io write');
    await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', overlay]), 'qemu-img create');
    await assertSameAsQemuIo(overlay, 'qcow2', [
      'write -P 2 512k 64k', 'write -z 2M 64k', 'write -c 3M 64k', 'map', 'info', 'length', 'discard 3M 64k',
      'map', 'write -P 5 1000 3', 'read -P 5 1000 3', 'read -P 1 0 512k', 'read -P 0 1M 1M', 'write -z -u 0 64k',
      'map', 'read -P 0 0 64k', 'write -c 1M 100k', 'write -c 1M 128k', 'write -c 4M 64k', 'read -v 3M 16',
      'alloc 0', 'alloc 512k', 'alloc 512k 128k', 'alloc 0 1M', 'alloc 1000 10', 'alloc 5M', 'alloc 0 5M', 'alloc abc',
      'truncate 8M', 'length', 'map',
    ]);
    await mustRun(qemuImg(['check', overlay]), 'qemu-img check');
  } finally {
    await cleanup();
  }
});

test('without -c, commands come from standard input after a prompt, until quit', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const image = path.join(dir, 'in.raw');
    await mustRun(qemuImg(['create', '-q', '-f', 'raw', image, '1M']), 'qemu-img create');
    const r = await tsemu(['io', '-f', 'raw', image], { input: 'write -q -P 3 0 512\nread -P 3 0 512\nlength\nquit\nlength\n' });
    assert.equal(r.code, 0, r.stderr);
    const lines = untimed(r.stdout).split('tsemu io> ');
    assert.deepEqual(lines, ['', '', 'read 512/512 bytes at offset 0\n512 bytes, 1 ops; <time>\n', '1 MiB\n', '']);
  } finally {
    await cleanup();
  }
});

/** Starts a program that writes the qcow2 image `file`; resolves once it holds lock byte 201. */
function holder(program: string, args: string[], file: string): Promise<ChildProcess> {
  return startLockHolder(program, args, file, 201, ROOT);
}

test('tsemu io and qemu-io lock each other out of a qcow2 image they write', async () => {
  requirePeer('qemu-io');
  const { dir, cleanup } = await scratchDir();
  try {
    const image = path.join(dir, 'locked.qcow2');
    await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', image, '1M']), 'qemu-img create');

    const q = await holder('qemu-io', ['-f', 'qcow2', '-c', 'sleep 60000', image], image);
    try {
      const t = await tsemu(['io', '-f', 'qcow2', '-c', 'read 0 512', image]);
      assert.equal(t.code, 1);
      assert.equal(t.stderr, `tsemu: can't open device ${image}: Failed to get "write" lock\nIs another process using the image [${image}]?\n`);
      const shared = await tsemu(['io', '-r', '-U', '-f', 'qcow2', '-c', 'read -q 0 512', image]);
      assert.equal(shared.code, 0, shared.stderr);
    } finally {
      await stopChild(q);
    }

    const t = await holder(process.execPath, [path.join(ROOT, 'bin/tsemu.js'), 'io', '-f', 'qcow2', '-c', 'sleep 60000', image], image);
    try {
      const r = qemuIoNoStdin(['-f', 'qcow2', '-c', 'read 0 512', image]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /Failed to get "write" lock\nIs another process using the image/);
      const ro = qemuIoNoStdin(['-r', '-f', 'qcow2', '-c', 'read 0 512', image]);
      assert.match(ro.stderr, /Failed to get shared "write" lock/);
    } finally {
      await stopChild(t);
    }
    await mustRun(qemuIo(['-f', 'qcow2', '-c', 'read 0 512', image]), 'qemu-io once tsemu io is gone');
  } finally {
    await cleanup();
  }
});

test('opening errors and read-only mode are reported like qemu-io', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const image = path.join(dir, 'e.raw');
    await mustRun(qemuImg(['create', '-q', '-f', 'raw', image, '1M']), 'qemu-img create');
    const missing = path.join(dir, 'missing.raw');
    const m = await tsemu(['io', '-f', 'raw', '-c', 'read 0 1', missing]);
    assert.equal(m.stderr, `tsemu: can't open device ${missing}: Could not open '${missing}': No such file or directory\n`);
    assert.equal(m.code, 1);
    const probed = await tsemu(['io', '-c', 'read -q 0 1', image]);
    const qemuProbed = await qemuIo(['-c', 'read -q 0 1', image]);
    assert.equal(probed.stderr, qemuProbed.stderr);
    assert.equal((await tsemu(['io', '-r', '-c', 'read -q 0 1', image])).stderr, '');
    const u = await tsemu(['io', '-U', '-f', 'raw', '-c', 'read 0 1', image]);
    assert.match(u.stderr, /force-share=on can only be used with read-only images/);
    const c = await tsemu(['io', '-t', 'bogus', '-f', 'raw', '-c', 'read 0 1', image]);
    assert.match(c.stderr, /Invalid cache option: bogus/);
    const ro = await tsemu(['io', '-r', '-f', 'raw', '-c', 'write 0 1', '-c', 'discard 0 512', '-c', 'read -q 0 1', image]);
    assert.equal(ro.stderr, 'tsemu: Block node is read-only\ntsemu: Block node is read-only\n');
    assert.equal(ro.code, 1);
    const opts = await tsemu(['io', '--image-opts', '-c', 'write -q -P 9 0 4', `driver=raw,file.filename=${image}`]);
    assert.equal(opts.code, 0, opts.stderr);
    assert.deepEqual([...(await readFile(image)).subarray(0, 5)], [9, 9, 9, 9, 0]);
    const src = path.join(dir, 'src.bin');
    await copyFile(image, src);
    const s = await tsemu(['io', '-f', 'raw', '-c', `write -q -s ${src} 4096 8`, '-c', 'read -q -P 9 -l 4 4096 8', image]);
    assert.equal(s.code, 0, s.stdout + s.stderr);
    await writeFile(path.join(dir, 'abc.bin'), 'abc');
    await writeFile(path.join(dir, 'empty.bin'), '');
    await assertSameAsQemuIo(image, 'raw', [
      `write -s ${dir}/abc.bin 0 8`, 'read -v 0 16', `write -s ${dir}/empty.bin 0 8`, `write -s ${dir}/none.bin 0 8`,
    ]);
  } finally {
    await cleanup();
  }
});

test('a read of damaged qcow2 metadata fails as in qemu-io, with the corruption report on stderr', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const image = path.join(dir, 'damaged.qcow2');
    await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', image, '4M']), 'create');
    await mustRun(qemuIo(['-c', 'write -P 0x11 0 128k', image]), 'write');
    // Move L1 entry 0 off its cluster boundary.
    const bytes = await readFile(image);
    const l1 = Number(bytes.readBigUInt64BE(40));
    bytes.writeBigUInt64BE(bytes.readBigUInt64BE(l1) + 512n, l1);
    const cases: [string[], RegExp][] = [
      [[], /^qcow2: Marking image as corrupt: .*L1 entry 0 points to unaligned offset 0x[0-9a-f]+200/],
      [['-r'], /L1 entry 0 points to unaligned offset/],
    ];
    for (const [mode, report] of cases) {
      const copy = `${image}${mode.join('')}.copy`;
      const theirs = `${copy}.qemu`;
      await writeFile(copy, bytes);
      await writeFile(theirs, bytes);
      const q = await qemuIo([...mode, '-c', 'read 0 64k', theirs]);
      const t = await tsemu(['io', ...mode, '-c', 'read 0 64k', copy]);
      assert.equal(t.stdout, q.stdout);
      assert.equal(t.stdout, 'read failed: Input/output error\n');
      assert.equal(t.code, q.code);
      assert.match(q.stderr, /^qcow2: (Marking image as corrupt|Image is corrupt): L2 table offset 0x[0-9a-f]+ unaligned/);
      assert.match(t.stderr, report);
    }
  } finally {
    await cleanup();
  }
});
