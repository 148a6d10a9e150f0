import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { readFile } from 'node:fs/promises';
import { parseSerialSpec } from '../../src/emulator/chardev/backend.js';
import { createSerialBackend } from '../../src/emulator/chardev/create.js';
import { EscapeFilter, type EscapeCommand } from '../../src/emulator/chardev/escape.js';
import { StdioSerial } from '../../src/emulator/chardev/stdio.js';
import { TcpSerial } from '../../src/emulator/chardev/tcp.js';
import { scratchDir } from '../helpers/peers.js';

test('serial specs: QEMU spellings parse; bad ones are clear errors', () => {
  assert.deepEqual(parseSerialSpec('stdio'), { kind: 'stdio' });
  assert.deepEqual(parseSerialSpec('mon:stdio'), { kind: 'stdio' });
  assert.deepEqual(parseSerialSpec('file:/tmp/x.log'), { kind: 'file', path: '/tmp/x.log' });
  assert.deepEqual(parseSerialSpec('tcp:127.0.0.1:4444,server'), { kind: 'tcp', host: '127.0.0.1', port: 4444, server: true, wait: true });
  assert.deepEqual(parseSerialSpec('tcp:127.0.0.1:4444,server=on,wait=off'), { kind: 'tcp', host: '127.0.0.1', port: 4444, server: true, wait: false });
  assert.deepEqual(parseSerialSpec('tcp::4444,server,nowait'), { kind: 'tcp', host: '0.0.0.0', port: 4444, server: true, wait: false });
  assert.deepEqual(parseSerialSpec('tcp:localhost:22'), { kind: 'tcp', host: 'localhost', port: 22, server: false, wait: false });
  assert.throws(() => parseSerialSpec('pty'), /expected stdio/);
  assert.throws(() => parseSerialSpec('tcp:h:99999,server'), /not a TCP port/);
  assert.throws(() => parseSerialSpec('tcp:h:1,server,bogus'), /unknown option 'bogus'/);
});

test('Ctrl-A escapes: x, c, h are commands, C-a C-a sends one C-a, across split reads', () => {
  const commands: EscapeCommand[] = [];
  const f = new EscapeFilter((c) => commands.push(c));
  assert.deepEqual([...f.filter(Buffer.from('ab\x01'))], [0x61, 0x62]);
  assert.deepEqual([...f.filter(Buffer.from('\x01c\x01hz\x01'))], [0x01, 0x63, 0x7a]);
  assert.deepEqual([...f.filter(Buffer.from('q\x01x'))], []);
  assert.deepEqual(commands, ['help', 'quit']);
});

test('stdio backend: input goes through the escapes; C-a x quits, C-a c prints the monitor notice', async () => {
  const input = new PassThrough() as unknown as NodeJS.ReadStream;
  const output = new PassThrough();
  const printed: Buffer[] = [];
  output.on('data', (d: Buffer) => printed.push(d));
  let quits = 0;
  const serial = new StdioSerial(() => quits++, input, output);
  const received: number[] = [];
  serial.onInput((b) => received.push(...b));
  await serial.open();
  serial.write(Buffer.from('hello'));
  (input as unknown as PassThrough).write('ls\r\x01c\x01\x01\x01x');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(Buffer.from(received).toString('latin1'), 'ls\r\x01');
  assert.equal(quits, 1);
  assert.match(Buffer.concat(printed).toString(), /^hello\r\ntsemu: the monitor is not available yet/);
  await serial.close();
});

test('file backend: output lands in the file (truncated on open)', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'console.log');
    const serial = createSerialBackend(`file:${file}`, { onQuit: () => {} });
    await serial.open();
    serial.write(Buffer.from('first '));
    serial.write(Buffer.from('second\n'));
    await serial.close();
    assert.equal(await readFile(file, 'utf8'), 'first second\n');
  } finally {
    await cleanup();
  }
});

test('tcp server with wait: open() resolves when a client connects; bytes flow both ways', async () => {
  let port = 0;
  const serial = new TcpSerial({ host: '127.0.0.1', port: 0, server: true, wait: true, onListening: (a) => (port = a.port) });
  const received: number[] = [];
  serial.onInput((b) => received.push(...b));
  const opened = serial.open();
  while (port === 0) await new Promise((r) => setTimeout(r, 5));
  const client = net.connect({ host: '127.0.0.1', port });
  await opened;
  serial.write(Buffer.from('login: '));
  const [data] = (await once(client, 'data')) as [Buffer];
  assert.equal(data.toString(), 'login: ');
  client.write('root\n');
  while (received.length < 5) await new Promise((r) => setTimeout(r, 5));
  assert.equal(Buffer.from(received).toString(), 'root\n');
  client.destroy();
  await serial.close();
});

test('tcp server with wait=off: open() resolves at once; output without a client is dropped', async () => {
  const serial = new TcpSerial({ host: '127.0.0.1', port: 0, server: true, wait: false });
  await serial.open();
  serial.write(Buffer.from('nobody hears this'));
  const client = net.connect({ host: '127.0.0.1', port: serial.address()!.port });
  await once(client, 'connect');
  await new Promise((r) => setTimeout(r, 20));
  serial.write(Buffer.from('ok'));
  const [data] = (await once(client, 'data')) as [Buffer];
  assert.equal(data.toString(), 'ok');
  client.destroy();
  await serial.close();
});

test('tcp client: connects out; a missing peer is a clear error', async () => {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const accepted = once(server, 'connection');
  const serial = createSerialBackend(`tcp:127.0.0.1:${port}`, { onQuit: () => {} });
  await serial.open();
  const [socket] = (await accepted) as [net.Socket];
  serial.write(Buffer.from('hi'));
  const [data] = (await once(socket, 'data')) as [Buffer];
  assert.equal(data.toString(), 'hi');
  socket.destroy();
  await serial.close();
  await new Promise((r) => server.close(r));
  await assert.rejects(createSerialBackend(`tcp:127.0.0.1:${port}`, { onQuit: () => {} }).open(), /cannot connect to 127.0.0.1/);
});
