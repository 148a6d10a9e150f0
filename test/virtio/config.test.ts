/**
 * The command-line side of the virtio devices: --drive, --device and
 * --chardev parsing with QEMU's spellings and clear errors, their assembly
 * (IDs resolved, order: --device ones then if=virtio drives), the temporary
 * overlay of snapshot=on (writes never reach the image, no file left behind),
 * and tsemu run refusing bad arguments with a message and a non-zero exit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { closeImage } from '../../src/block/open.js';
import { createImage } from '../../src/block/ops/create.js';
import { parseChardev } from '../../src/emulator/config/chardev.js';
import { parseDevice } from '../../src/emulator/config/device.js';
import { openDrive, parseDrive } from '../../src/emulator/config/drive.js';
import { setUpVirtioDevices } from '../../src/emulator/config/virtio-devices.js';
import { tsemu } from '../helpers/peers.js';

test('--drive: defaults, every option, and errors naming what is wrong', () => {
  assert.deepEqual(parseDrive('file=a.qcow2', 0), {
    file: 'a.qcow2', format: undefined, interface: 'virtio', id: 'virtio0', readOnly: false, snapshot: false,
    cache: 'writeback', discard: 'ignore', serial: undefined,
  });
  const d = parseDrive('file=x,,y.img,format=raw,if=none,id=d1,readonly=on,snapshot=on,cache=unsafe,discard=unmap,serial=S1', 3);
  assert.equal(d.file, 'x,y.img');
  assert.deepEqual([d.format, d.interface, d.id, d.readOnly, d.snapshot, d.cache, d.discard, d.serial], ['raw', 'none', 'd1', true, true, 'unsafe', 'unmap', 'S1']);
  assert.throws(() => parseDrive('file=a,media=cdrom', 0), /--drive file=a,media=cdrom: Invalid parameter 'media'/);
  assert.throws(() => parseDrive('format=raw', 0), /file= is missing/);
  assert.throws(() => parseDrive('file=a,cache=fast', 0), /cache must be one of writeback, none, writethrough, directsync, unsafe, not 'fast'/);
  assert.throws(() => parseDrive('file=a,if=ide', 0), /if must be one of virtio, none/);
  assert.throws(() => parseDrive('file=a,if=none', 0), /if=none needs an id=/);
  assert.throws(() => parseDrive('file=a,readonly=maybe', 0), /readonly/);
});

test('--device and --chardev: QEMU names and properties', () => {
  assert.deepEqual(parseDevice('virtio-blk-device,drive=d0,serial=x'), { driver: 'virtio-blk', drive: 'd0', serial: 'x' });
  assert.deepEqual(parseDevice('virtio-rng-device'), { driver: 'virtio-rng' });
  assert.deepEqual(parseDevice('virtconsole,chardev=c0'), { driver: 'virtconsole', chardev: 'c0' });
  assert.throws(() => parseDevice('e1000'), /'e1000' is not a device tsemu has/);
  assert.throws(() => parseDevice('virtio-blk'), /virtio-blk needs drive=/);
  assert.throws(() => parseDevice('virtio-rng,max-bytes=1'), /has no property 'max-bytes'/);
  assert.deepEqual(parseChardev('file,id=c0,path=/tmp/x'), { id: 'c0', serial: 'file:/tmp/x' });
  assert.deepEqual(parseChardev('socket,id=s,host=127.0.0.1,port=4444,server=on,wait=off'), { id: 's', serial: 'tcp:127.0.0.1:4444,server=on,wait=off' });
  assert.deepEqual(parseChardev('null,id=n'), { id: 'n', serial: 'null' });
  assert.throws(() => parseChardev('pty,id=p'), /'pty' is not a backend/);
  assert.throws(() => parseChardev('file,path=x'), /id= is missing/);
});

test('assembly: IDs resolved, --device devices first, then if=virtio drives; bad references refused', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'tsemu-virtio-cfg-'));
  try {
    const a = path.join(dir, 'a.raw');
    const b = path.join(dir, 'b.raw');
    for (const f of [a, b]) await createImage({ filename: f, format: 'raw', size: '1M', options: [] });
    const hooks = { onQuit: () => {} };
    const base = { chardevs: [], snapshot: false, serial: 'stdio', hooks };
    const setup = await setUpVirtioDevices({
      ...base, drives: [`file=${a},format=raw`, `file=${b},format=raw,if=none,id=disk`], devices: ['virtio-rng', 'virtio-blk,drive=disk'],
    });
    try {
      assert.deepEqual(setup.devices.map((make) => make().name), ['virtio-rng', 'virtio-blk', 'virtio-blk']);
    } finally {
      await setup.close();
    }
    await assert.rejects(setUpVirtioDevices({ ...base, drives: [], devices: ['virtio-blk,drive=nope'] }), /no drive with id 'nope'/);
    await assert.rejects(
      setUpVirtioDevices({ ...base, drives: [`file=${a},id=x,if=none`, `file=${b},id=x,if=none`], devices: [] }),
      /duplicate drive id 'x'/,
    );
    await assert.rejects(
      setUpVirtioDevices({ ...base, drives: [`file=${a},id=x`], devices: ['virtio-blk,drive=x'] }),
      /if=virtio already makes its device/,
    );
    await assert.rejects(
      setUpVirtioDevices({ ...base, drives: [], chardevs: ['stdio,id=c'], devices: ['virtconsole,chardev=c'] }),
      /stdio is the serial console's/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('snapshot=on: writes go to a temporary overlay that leaves no file; the image is unchanged', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'tsemu-virtio-snap-'));
  try {
    const file = path.join(dir, 'disk.qcow2');
    await createImage({ filename: file, format: 'qcow2', size: '1M', options: [] });
    const before = await readFile(file);
    const tmpBefore = (await readdir(tmpdir())).filter((n) => n.startsWith('tsemu-snapshot-'));
    const node = await openDrive(parseDrive(`file=${file},snapshot=on`, 0));
    try {
      assert.equal(node.driver, 'qcow2');
      assert.equal(node.backing?.filename, file);
      await node.write(0, new Uint8Array(65536).fill(7));
      const back = new Uint8Array(4);
      await node.read(0, back);
      assert.deepEqual(back, Uint8Array.of(7, 7, 7, 7));
      const tmpNow = (await readdir(tmpdir())).filter((n) => n.startsWith('tsemu-snapshot-'));
      assert.deepEqual(tmpNow, tmpBefore, 'the overlay is unlinked while open');
    } finally {
      await closeImage(node);
    }
    assert.deepEqual(await readFile(file), before);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('tsemu run: bad virtio arguments are clear errors with a non-zero exit', async () => {
  for (const [args, message] of [
    [['--drive', 'file=/nonexistent/disk.qcow2'], /Could not open '\/nonexistent\/disk.qcow2'/],
    [['--drive', 'file=x,bogus=1'], /Invalid parameter 'bogus'/],
    [['--device', 'virtio-gpu'], /'virtio-gpu' is not a device tsemu has/],
    [['--device', 'virtio-blk,drive=none0'], /no drive with id 'none0'/],
  ] as const) {
    const r = await tsemu(['run', '--serial', 'null', ...args]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, message);
  }
});
