/**
 * tsemu as an NBD client (the nbd protocol driver under `tsemu img`): of qemu-nbd
 * over TCP and a Unix socket (info, map against qemu-img's own map of the same
 * export, convert from an export, convert -n and convert into an export, clear
 * errors for a refused connection, an unknown export and a too-large create), of
 * `tsemu nbd serve` (the two sides of tsemu talking to each other), and of a
 * hostile server (garbage replies, a hang-up mid-transfer, structured read chunks
 * that overlap and leave a gap: clear errors, no target).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { mustRun, qemuImg, qemuIo, scratchDir, tsemu } from '../helpers/peers.js';
import { HOST, MiB, freePort, makeImage, serveOnLoopback, startQemuNbd } from './support.js';

test('tsemu img as a client of qemu-nbd', async (t) => {
  const { dir, cleanup } = await scratchDir();
  t.after(cleanup);
  const image = await makeImage(dir);
  const { port, uri: base } = await serveOnLoopback(t, 'qemu-nbd', ['-t', '-r', '-x', 'src', '-f', 'qcow2', image], dir);
  const uri = `${base}/src`;

  await t.test('info', async () => {
    const r = await mustRun(tsemu(['img', 'info', uri]), 'tsemu img info');
    assert.match(r.stdout, /^image: nbd:\/\/127\.0\.0\.1:\d+\/src$/m);
    assert.match(r.stdout, /^file format: raw$/m);
    assert.match(r.stdout, /^virtual size: 8 MiB \(8388608 bytes\)$/m);
    assert.match(r.stdout, /^disk size: unavailable$/m);
  });

  await t.test('map matches qemu-img map of the same export', async () => {
    const ours = await mustRun(tsemu(['img', 'map', '--output=json', uri]), 'tsemu img map');
    const theirs = await mustRun(qemuImg(['map', '--output=json', uri]), 'qemu-img map');
    assert.equal(ours.stdout, theirs.stdout);
    assert.match(ours.stdout, /"zero": true, "data": false/);
  });

  await t.test('convert from the export to qcow2 skips its holes', async () => {
    const out = path.join(dir, 'copy.qcow2');
    await mustRun(tsemu(['img', 'convert', '-O', 'qcow2', uri, out]), 'tsemu img convert');
    await mustRun(qemuImg(['compare', '-F', 'qcow2', out, image]), 'qemu-img compare');
    const map = await mustRun(qemuImg(['map', '--output=json', out]), 'qemu-img map of the copy');
    // Only the 1.5 MiB of data were written: the zero ranges stay unallocated in the copy.
    const entries = JSON.parse(map.stdout) as { length: number; data: boolean }[];
    assert.equal(entries.filter((e) => e.data).reduce((n, e) => n + e.length, 0), 1.5 * MiB);
  });

  await t.test('errors: refused connection, unknown export', async () => {
    const refused = await tsemu(['img', 'info', `nbd://${HOST}:${await freePort()}/src`]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /Failed to connect to '127\.0\.0\.1:\d+': Connection refused/);
    const unknown = await tsemu(['img', 'info', `nbd://${HOST}:${port}/nope`]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /Requested export not available/);
  });
});

test('tsemu img convert into a qemu-nbd export, and nbd+unix', async (t) => {
  const { dir, cleanup } = await scratchDir();
  t.after(cleanup);
  const image = await makeImage(dir);
  const target = path.join(dir, 'target.raw');
  await mustRun(qemuImg(['create', '-q', '-f', 'raw', target, '8M']), 'qemu-img create');
  await mustRun(qemuIo(['-f', 'raw', '-c', 'write -P 0x77 0 8M', target]), 'qemu-io fill');
  const socket = path.join(dir, 'nbd.sock');
  const server = await startQemuNbd(['-k', socket, '-t', '-e', '2', '-x', 'dst', '-f', 'raw', target], dir);
  t.after(() => server.stop());
  const uri = `nbd+unix:///dst?socket=${socket}`;

  await t.test('convert -n writes data and zeroes into the export', async () => {
    await mustRun(tsemu(['img', 'convert', '-n', '-O', 'raw', image, uri]), 'tsemu img convert -n');
    await mustRun(qemuImg(['compare', '-F', 'raw', image, uri]), 'qemu-img compare');
    await mustRun(tsemu(['img', 'compare', image, uri]), 'tsemu img compare');
  });

  await t.test('convert without -n uses the existing export, as qemu-img does', async () => {
    await mustRun(qemuIo(['-f', 'raw', '-c', 'write -P 0x77 0 8M', uri]), 'qemu-io refill');
    await mustRun(tsemu(['img', 'convert', '-O', 'raw', image, uri]), 'tsemu img convert');
    await mustRun(qemuImg(['compare', '-F', 'raw', image, uri]), 'qemu-img compare');
  });

  await t.test('an export cannot grow', async () => {
    const r = await tsemu(['img', 'create', '-f', 'raw', uri, '16M']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Cannot grow NBD nodes/);
  });

  await t.test('info over the Unix socket', async () => {
    const r = await mustRun(tsemu(['img', 'info', '--output=json', uri]), 'tsemu img info');
    assert.equal((JSON.parse(r.stdout) as Record<string, unknown>)['virtual-size'], 8 * MiB);
  });
});

test('tsemu nbd serve and the tsemu nbd client talk to each other', async (t) => {
  const { dir, cleanup } = await scratchDir();
  t.after(cleanup);
  const image = await makeImage(dir);
  const { server, uri: base } = await serveOnLoopback(t, 'tsemu', ['-t', '-x', 'disk', image], dir);
  const uri = `${base}/disk`;

  const copy = path.join(dir, 'copy.qcow2');
  await mustRun(tsemu(['img', 'convert', '-O', 'qcow2', uri, copy]), 'tsemu img convert from tsemu nbd');
  await mustRun(tsemu(['img', 'compare', '-f', 'qcow2', '-F', 'raw', copy, uri]), 'tsemu img compare');
  const map = await mustRun(tsemu(['img', 'map', '--output=json', uri]), 'tsemu img map');
  assert.match(map.stdout, /\{ "start": 1048576, "length": 4194304, "depth": 0, "present": true, "zero": true, "data": false/);

  await mustRun(tsemu(['io', '-f', 'raw', '-c', 'write -P 0x5a 1M 64k', uri]), 'tsemu io write');
  const r = await mustRun(tsemu(['io', '-f', 'raw', '-c', 'read -P 0x5a 1M 64k', uri]), 'tsemu io read');
  assert.doesNotMatch(r.stdout, /Pattern verification failed/);
  assert.equal(await server.stop(), 0, server.stderr());
  await mustRun(qemuImg(['check', image]), 'qemu-img check');
  const back = await mustRun(
    qemuIo(['-f', 'qcow2', '-c', 'read -P 0x5a 1M 64k', '-c', 'read -P 0x11 0 1M', image]),
    'qemu-io read back',
  );
  assert.doesNotMatch(back.stdout, /Pattern verification failed/);
});

/**
 * A server that negotiates the old (non-fixed) newstyle way, exports 1 MiB read-only,
 * and then answers the first request with garbage or by hanging up.
 */
async function hostileServer(behaviour: 'garbage' | 'hangup'): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer((s) => {
    s.on('error', () => {});
    const greeting = Buffer.alloc(18);
    greeting.write('NBDMAGICIHAVEOPT', 'latin1');
    s.write(greeting);
    let got = Buffer.alloc(0);
    let stage = 0;
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      // Client flags (4) + EXPORT_NAME option header (16) + empty name: then the export.
      if (stage === 0 && got.length >= 20) {
        stage = 1;
        got = got.subarray(20 + got.readUInt32BE(16));
        const reply = Buffer.alloc(134);
        reply.writeUInt32BE(1 << 20, 4);
        reply.writeUInt16BE(0b11, 8);
        s.write(reply);
      }
      if (stage === 1 && got.length >= 28) {
        stage = 2;
        if (behaviour === 'garbage') s.write(Buffer.alloc(64, 0xab));
        else s.destroy();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

test('a hostile NBD server gives a clear error and no target', async (t) => {
  const { dir, cleanup } = await scratchDir();
  t.after(cleanup);
  for (const [behaviour, message] of [
    ['garbage', /NBD protocol error: bad reply magic 0xabababab/],
    ['hangup', /the NBD server closed the connection/],
  ] as const) {
    const server = await hostileServer(behaviour);
    const out = path.join(dir, `${behaviour}.raw`);
    const r = await tsemu(['img', 'convert', '-O', 'raw', `nbd://${HOST}:${server.port}`, out]);
    await server.close();
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, message);
    assert.equal(existsSync(out), false);
  }
});

/**
 * A fixed-newstyle server that agrees to structured replies, exports 1 MiB read-only
 * and answers every read with two content chunks for the same first half: together
 * they add up to the read's length, but the second half never arrives.
 */
async function overlappingChunkServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const optionReply = (option: number, type: number, data = Buffer.alloc(0)): Buffer => {
    const r = Buffer.alloc(20 + data.length);
    r.writeBigUInt64BE(0x3e889045565a9n, 0);
    r.writeUInt32BE(option, 8);
    r.writeUInt32BE(type >>> 0, 12);
    r.writeUInt32BE(data.length, 16);
    data.copy(r, 20);
    return r;
  };
  const dataChunk = (flags: number, handle: Buffer, offset: bigint, length: number): Buffer => {
    const c = Buffer.alloc(20 + 8 + length, 0x42);
    c.writeUInt32BE(0x668e33ef, 0);
    c.writeUInt16BE(flags, 4);
    c.writeUInt16BE(1, 6); // NBD_REPLY_TYPE_OFFSET_DATA
    handle.copy(c, 8);
    c.writeUInt32BE(8 + length, 16);
    c.writeBigUInt64BE(offset, 20);
    return c;
  };
  const server = net.createServer((s) => {
    s.on('error', () => {});
    const greeting = Buffer.alloc(18);
    greeting.write('NBDMAGICIHAVEOPT', 'latin1');
    greeting.writeUInt16BE(0b11, 16); // FIXED_NEWSTYLE | NO_ZEROES
    s.write(greeting);
    let got = Buffer.alloc(0);
    let transmission = false;
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (!transmission && got.length >= 4 && !got.subarray(0, 4).equals(Buffer.from('IHAV'))) got = got.subarray(4); // client flags
      while (!transmission && got.length >= 16 && got.length >= 16 + got.readUInt32BE(12)) {
        const option = got.readUInt32BE(8);
        got = got.subarray(16 + got.readUInt32BE(12));
        if (option === 8) s.write(optionReply(option, 1)); // STRUCTURED_REPLY: ACK
        else if (option === 7) { // GO: the export's size and flags (HAS_FLAGS | READ_ONLY), then ACK
          const info = Buffer.alloc(12);
          info.writeBigUInt64BE(BigInt(MiB), 2);
          info.writeUInt16BE(0b11, 10);
          s.write(Buffer.concat([optionReply(option, 3, info), optionReply(option, 1)]));
          transmission = true;
        } else s.write(optionReply(option, 0x80000001)); // ERR_UNSUP
      }
      while (transmission && got.length >= 28) {
        const type = got.readUInt16BE(6);
        const handle = Buffer.from(got.subarray(8, 16));
        const offset = got.readBigUInt64BE(16);
        const length = got.readUInt32BE(24);
        got = got.subarray(28);
        if (type !== 0) { s.destroy(); return; }
        s.write(Buffer.concat([dataChunk(0, handle, offset, length / 2), dataChunk(1, handle, offset, length / 2)]));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

test('structured read chunks that overlap are a protocol error, not a read with a gap', async (t) => {
  const { dir, cleanup } = await scratchDir();
  t.after(cleanup);
  const server = await overlappingChunkServer();
  const out = path.join(dir, 'overlap.raw');
  const r = await tsemu(['img', 'convert', '-O', 'raw', `nbd://${HOST}:${server.port}`, out]);
  await server.close();
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /NBD protocol error: a chunk at offset \d+ length \d+ overlaps an earlier chunk of the same read/);
  assert.equal(existsSync(out), false);
});
