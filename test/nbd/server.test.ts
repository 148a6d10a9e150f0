/**
 * `tsemu nbd serve` with QEMU's NBD clients: qemu-img (info, compare, map through
 * base:allocation, convert), qemu-io (writes), qemu-nbd -L (list, info, meta
 * contexts); read-only exports, unknown export names, --persistent and the default
 * one-client lifetime, and clients that break the protocol.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import { mustRun, qemuImg, qemuIo, runProgram, scratchDir } from '../helpers/peers.js';
import { type Background, HOST, MiB, makeImage as makeQcow2, serveOnLoopback } from './support.js';
import { NbdConnection, NbdCommandError } from '../../src/block/nbd/client-connection.js';
import { CMD_WRITE, NBD_EPERM } from '../../src/block/nbd/protocol.js';

/** The test image and its content as a raw file. */
async function makeImage(dir: string): Promise<{ image: string; expected: string }> {
  const image = await makeQcow2(dir);
  const expected = path.join(dir, 'expected.raw');
  await mustRun(qemuImg(['convert', '-f', 'qcow2', '-O', 'raw', image, expected]), 'qemu-img convert');
  return { image, expected };
}

/** Stops the server (it must exit 0), then checks the image it served and compares it with raw `expected`. */
async function stopAndCheck(server: Background, image: string, expected: string): Promise<void> {
  assert.equal(await server.stop(), 0, server.stderr());
  await mustRun(qemuImg(['check', image]), `qemu-img check ${image}`);
  await mustRun(qemuImg(['compare', '-F', 'raw', image, expected]), `qemu-img compare ${image}`);
}

interface MapEntry {
  start: number;
  length: number;
  zero: boolean;
  data: boolean;
}

/** Whether [start, start+length) lies in one entry with these zero/data flags. */
function mapped(entries: MapEntry[], start: number, length: number, zero: boolean, data: boolean): boolean {
  return entries.some((e) => e.start <= start && start + length <= e.start + e.length && e.zero === zero && e.data === data);
}

test('qemu-img and qemu-io as clients of a persistent tsemu nbd serve', async (t) => {
  const { dir, cleanup } = await scratchDir();
  t.after(cleanup);
  const { image, expected } = await makeImage(dir);
  const { server, port, uri: base } = await serveOnLoopback(t, 'tsemu', ['-t', '-x', 'disk', '-f', 'qcow2', image], dir);
  const uri = `${base}/disk`;

  await t.test('info', async () => {
    const r = await mustRun(qemuImg(['info', '--output=json', uri]), 'qemu-img info');
    const info = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(info['virtual-size'], 8 * MiB);
    assert.equal(info.format, 'raw');
  });

  await t.test('qemu-img compare reads the export as the image', async () => {
    await mustRun(qemuImg(['compare', '-f', 'raw', '-F', 'raw', expected, uri]), 'qemu-img compare');
  });

  await t.test('map shows holes through base:allocation', async () => {
    const r = await mustRun(qemuImg(['map', '--output=json', '-f', 'raw', uri]), 'qemu-img map');
    const entries = JSON.parse(r.stdout) as MapEntry[];
    assert.ok(mapped(entries, 0, MiB, false, true), r.stdout);
    assert.ok(mapped(entries, 1 * MiB, 4 * MiB, true, false), r.stdout);
    assert.ok(mapped(entries, 5 * MiB, MiB / 2, false, true), r.stdout);
    assert.ok(mapped(entries, 5.5 * MiB, 2.5 * MiB, true, false), r.stdout);
  });

  await t.test('qemu-nbd -L lists the export, its flags and base:allocation', async () => {
    const r = await mustRun(runProgram('qemu-nbd', ['-L', '-b', HOST, '-p', String(port)]), 'qemu-nbd -L');
    assert.match(r.stdout, /export: 'disk'/);
    assert.match(r.stdout, /size:\s+8388608/);
    assert.match(r.stdout, /flush fua trim zeroes df multi/);
    assert.match(r.stdout, /base:allocation/);
  });

  await t.test('qemu-io writes, zeroes and discards land in the image', async () => {
    await mustRun(
      qemuIo(['-f', 'raw', '-c', 'write -P 0x5a 1M 64k', '-c', 'write -z 5M 4k', '-c', 'discard 0 64k', uri]),
      'qemu-io write',
    );
    const r = await mustRun(
      qemuIo(['-f', 'raw', '-c', 'read -P 0x5a 1M 64k', '-c', 'read -P 0 5M 4k', '-c', 'read -P 0 0 64k', uri]),
      'qemu-io read',
    );
    assert.doesNotMatch(r.stdout, /Pattern verification failed/);
    const want = new Uint8Array(await readFile(expected));
    want.fill(0x5a, MiB, MiB + 65536);
    want.fill(0, 5 * MiB, 5 * MiB + 4096);
    want.fill(0, 0, 65536);
    await writeFile(expected, want);
    await mustRun(qemuImg(['compare', '-f', 'raw', '-F', 'raw', expected, uri]), 'qemu-img compare after writes');
  });

  await t.test('an unknown export name is refused and the server goes on', async () => {
    const r = await qemuImg(['info', `nbd://${HOST}:${port}/nope`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Requested export not available/);
    assert.match(r.stderr, /export 'nope' not present/);
  });

  await t.test('malformed clients are dropped with a log line; others are served', async () => {
    // Unknown client flags, then a bad option magic, then a bad request magic after EXPORT_NAME.
    await rawClient(port, (greeting) => {
      assert.equal(greeting.subarray(0, 8).toString(), 'NBDMAGIC');
      return [u32(0x80000000)];
    });
    await rawClient(port, () => [u32(1), Buffer.from('NOTANOPTIONHEADER!')]);
    const exportName = Buffer.from('disk');
    await rawClient(port, () => [u32(3), Buffer.from('IHAVEOPT'), u32(1), u32(exportName.length), exportName, Buffer.alloc(28, 0xee)]);
    assert.match(server.stderr(), /unknown client flags/);
    assert.match(server.stderr(), /bad option magic/);
    assert.match(server.stderr(), /bad request magic/);
    await mustRun(qemuImg(['compare', '-f', 'raw', '-F', 'raw', expected, uri]), 'qemu-img compare after bad clients');
  });

  await t.test('SIGTERM ends the server cleanly and the image is consistent', async () => {
    await stopAndCheck(server, image, expected);
  });
});

test('a read-only export refuses writes; without --persistent the server leaves with its client', async (t) => {
  const { dir, cleanup } = await scratchDir();
  t.after(cleanup);
  const { image, expected } = await makeImage(dir);
  const { server, port, uri } = await serveOnLoopback(t, 'tsemu', ['-r', '-e', '2', image], dir);

  // A client that writes anyway gets EPERM, and the data stays as it was.
  const conn = await NbdConnection.connect({ host: HOST, port }, '');
  await assert.rejects(conn.request(CMD_WRITE, 0, 0, 512, { payload: new Uint8Array(512).fill(1) }), (e: unknown) => {
    assert.ok(e instanceof NbdCommandError);
    assert.equal(e.code, NBD_EPERM);
    return true;
  });
  // qemu-io (a second client) sees the read-only flag and will not open the export for writing.
  const rw = await qemuIo(['-f', 'raw', '-c', 'write 0 512', uri]);
  assert.notEqual(rw.code, 0);
  assert.match(rw.stderr, /Permission denied/);
  await mustRun(qemuImg(['compare', '-f', 'raw', '-F', 'raw', expected, uri]), 'qemu-img compare');
  await conn.close();
  // Both clients have gone: the server exits by itself, as qemu-nbd without -t does.
  assert.equal(await server.exited, 0, server.stderr());
});

test('an overlay is exported through its backing chain; qemu-img convert writes into the export', async (t) => {
  const { dir, cleanup } = await scratchDir();
  t.after(cleanup);
  const { image: base, expected } = await makeImage(dir);
  const overlay = path.join(dir, 'overlay.qcow2');
  await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', overlay]), 'qemu-img create overlay');
  await mustRun(qemuIo(['-f', 'qcow2', '-c', 'write -P 0x33 6M 64k', overlay]), 'qemu-io write overlay');
  const want = new Uint8Array(await readFile(expected));
  want.fill(0x33, 6 * MiB, 6 * MiB + 65536);
  await writeFile(expected, want);
  const { server, uri } = await serveOnLoopback(t, 'tsemu', ['-t', overlay], dir);

  await mustRun(qemuImg(['compare', '-f', 'raw', '-F', 'raw', expected, uri]), 'qemu-img compare');
  const r = await mustRun(qemuImg(['map', '--output=json', '-f', 'raw', uri]), 'qemu-img map');
  const entries = JSON.parse(r.stdout) as MapEntry[];
  assert.ok(mapped(entries, 0, MiB, false, true), r.stdout);
  assert.ok(mapped(entries, 6 * MiB, 65536, false, true), r.stdout);
  assert.ok(mapped(entries, 7 * MiB, MiB, true, false), r.stdout);

  // qemu-img convert -n sends writes, write-zeroes and a flush; the overlay then holds the source.
  const source = path.join(dir, 'source.raw');
  const data = new Uint8Array(8 * MiB).fill(0x44, 0, 3 * MiB);
  await writeFile(source, data);
  await mustRun(qemuImg(['convert', '-n', '-f', 'raw', '-O', 'raw', source, uri]), 'qemu-img convert -n');
  await mustRun(qemuImg(['compare', '-f', 'raw', '-F', 'raw', source, uri]), 'qemu-img compare after convert');
  await stopAndCheck(server, overlay, source);
});

test('with the default of one client at a time, a second client waits for the first', async (t) => {
  const { dir, cleanup } = await scratchDir();
  t.after(cleanup);
  const { image, expected } = await makeImage(dir);
  const { port, uri } = await serveOnLoopback(t, 'tsemu', ['-t', '-r', image], dir);
  const first = await NbdConnection.connect({ host: HOST, port }, '');
  let secondDone = false;
  const second = qemuImg(['compare', '-f', 'raw', '-F', 'raw', expected, uri]).then((r) => {
    secondDone = true;
    return r;
  });
  // The second client cannot finish while the first holds the only slot (a pause, not a deadline).
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(secondDone, false);
  await first.close();
  const r = await second;
  assert.equal(r.code, 0, r.stdout + r.stderr);
});

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** Connects, reads the 18-byte greeting, sends what `respond` returns, and waits for the server to hang up. */
function rawClient(port: number, respond: (greeting: Buffer) => Buffer[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, HOST);
    let got = Buffer.alloc(0);
    let answered = false;
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (!answered && got.length >= 18) {
        answered = true;
        for (const part of respond(got.subarray(0, 18))) s.write(part);
      }
    });
    s.on('error', () => {});
    s.on('close', () => (answered ? resolve() : reject(new Error('the server hung up before its greeting'))));
  });
}
