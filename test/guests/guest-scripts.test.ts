/**
 * The guest scripts without a network or a kernel build: debian-apt.sh finds the
 * mirror in both apt source formats (one-line .list and deb822 .sources, skipping
 * security suites, disabled paragraphs, non-deb types and other file names), and
 * the initramfs archives of both guests are newc cpio, owned by root, with the
 * entries /init needs; and the boot watcher reads the marker line through the kernel
 * messages that the console interleaves with /init's output.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { mustRun, ROOT, runProgram, scratchDir } from '../helpers/peers.js';
import { requireGuest, RISCV_GUESTS, watchBoot } from './riscv-guests.js';

test('debian-apt.sh: mirror candidates from sources.list, *.list and *.sources, in order', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    await mkdir(path.join(dir, 'sources.list.d'));
    await writeFile(
      path.join(dir, 'sources.list'),
      [
        '# a comment',
        'deb-src http://src.example/debian bookworm main',
        'deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main # trailing',
        'deb http://sec.example/debian-security bookworm-security main',
        'deb http://one.example/debian bookworm-updates main',
        '',
      ].join('\n'),
    );
    await writeFile(path.join(dir, 'sources.list.d/extra.list'), 'deb http://two.example/debian trixie main\n');
    await writeFile(
      path.join(dir, 'sources.list.d/debian.sources'),
      [
        'Types: deb deb-src',
        '# comment inside a paragraph',
        'URIs: http://three.example/debian http://four.example/debian',
        'Suites: trixie trixie-updates',
        'Components: main',
        '',
        'Types: deb',
        'URIs: http://sec2.example/debian-security',
        'Suites: trixie-security',
        '',
        'Types: deb',
        'URIs: http://off.example/debian',
        'Suites: trixie',
        'Enabled: no',
        '',
        'Types: deb-src',
        'URIs: http://src2.example/debian',
        'Suites: trixie',
      ].join('\n'),
    );
    await writeFile(path.join(dir, 'sources.list.d/other.list.disabled'), 'deb http://never.example/x y main\n');
    const script = `. '${path.join(ROOT, 'scripts/guests/debian-apt.sh')}' && debian_mirror_candidates '${dir}'`;
    const r = await mustRun(runProgram('bash', ['-c', script]), 'debian_mirror_candidates');
    assert.deepEqual(r.stdout.trim().split('\n'), [
      'http://one.example/debian',
      'http://two.example/debian',
      'http://three.example/debian',
      'http://four.example/debian',
    ]);
  } finally {
    await cleanup();
  }
});

interface CpioEntry {
  name: string;
  mode: number;
  uid: number;
  gid: number;
}

/** Lists a newc ("070701") cpio archive. */
function listNewc(archive: Uint8Array): CpioEntry[] {
  const text = (at: number, len: number): string => Buffer.from(archive.subarray(at, at + len)).toString('latin1');
  const field = (at: number, i: number): number => parseInt(text(at + 6 + 8 * i, 8), 16);
  const entries: CpioEntry[] = [];
  for (let at = 0; ; ) {
    assert.equal(text(at, 6), '070701', `newc magic at offset ${at}`);
    const nameSize = field(at, 11);
    const fileSize = field(at, 6);
    const name = text(at + 110, nameSize - 1);
    if (name === 'TRAILER!!!') return entries;
    entries.push({ name, mode: field(at, 1), uid: field(at, 2), gid: field(at, 3) });
    at = Math.ceil((at + 110 + nameSize) / 4) * 4;
    at = Math.ceil((at + fileSize) / 4) * 4;
  }
}

for (const guest of RISCV_GUESTS) {
  test(`${guest.name} guest: initramfs is a root-owned newc archive with /init and busybox`, async () => {
    requireGuest(guest);
    const entries = listNewc(gunzipSync(await readFile(guest.initrd)));
    const byName = new Map(entries.map((e) => [e.name, e]));
    for (const name of ['init', 'bin/busybox', 'bin/sh', 'dev', 'proc', 'sys']) {
      assert.ok(byName.has(name), `${name} missing from ${guest.initrd}`);
    }
    assert.equal(byName.get('init')!.mode & 0o111, 0o111, '/init is executable');
    for (const e of entries) assert.deepEqual([e.uid, e.gid], [0, 0], `${e.name} owned by root`);
  });
}

test('watchBoot: the marker line with kernel messages inside it or right after it', async () => {
  const consoles: [string, string][] = [
    ['x\r\nTSEMU-BOOT-OK 6.12.1 1\r\n', 'TSEMU-BOOT-OK 6.12.1 1'],
    ['TSEMU-BOOT-OK 6.1.2-t 2[    8.671623] reboot: Power down\r\n', 'TSEMU-BOOT-OK 6.1.2-t 2'],
    ['TSEMU-BOOT-OK 6.1.2-t [    2.100000] random: crng init done\r\n2\r\n', 'TSEMU-BOOT-OK 6.1.2-t 2'],
    ['TSEMU-BOOT-OK 6.1.2-t 2[    8.6] reboot: Pow', 'TSEMU-BOOT-OK 6.1.2-t 2'],
    ['no marker\n', ''],
  ];
  for (const [text, line] of consoles) {
    const run = await watchBoot('printf', ['%s', text], { deadlineSeconds: 60 });
    assert.equal(run.markerLine, line, JSON.stringify(text));
    assert.equal(run.markerSeconds === null, line === '');
  }
});

