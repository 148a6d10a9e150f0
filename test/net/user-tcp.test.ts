/**
 * The user stack's TCP toward a synthetic guest, the host side a real server on
 * 127.0.0.1: handshake options (MSS, window scaling), relaying both ways, the
 * guest's window honoured, retransmission after a lost segment, duplicate ACKs
 * for out-of-order data, delayed ACKs for in-order data, FIN in both directions, and RSTs for refused connections
 * and stray segments.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { Frame, HOST_IP, SyntheticGuest } from './synthetic.js';
import { ACK_DELAY_MS } from '../../src/net/user/delayed-ack.js';

const FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10;
const cleanup: (() => unknown)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

async function hostServer(onSocket: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {}); // the stack resets its connections when it closes
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.push(() => server.close());
  return { server, port: (server.address() as { port: number }).port };
}

function synOptions(mss: number, wscale: number | null): Uint8Array {
  return wscale === null ? Uint8Array.of(2, 4, mss >> 8, mss & 255) : Uint8Array.of(2, 4, mss >> 8, mss & 255, 1, 3, 3, wscale);
}

interface Session {
  g: SyntheticGuest;
  port: number;
  guestPort: number;
  seq: number;
  ack: number;
  synAck: Frame;
  host: Socket;
}

/** Opens a connection from the synthetic guest to a fresh host server and completes the handshake. */
async function open(guestWindow: number, wscale: number | null, mss = 1460): Promise<Session> {
  const g = await SyntheticGuest.create();
  cleanup.push(() => g.close());
  let accept!: (s: Socket) => void;
  const accepted = new Promise<Socket>((resolve) => (accept = resolve));
  const { port } = await hostServer((s) => accept(s));
  g.send(g.tcp(HOST_IP, 40001, port, 1000, 0, SYN, 65535, new Uint8Array(0), synOptions(mss, wscale)));
  const host = await accepted;
  const synAck = await g.next((f) => f.isTcp(SYN | ACK), 'SYN-ACK');
  g.send(g.tcp(HOST_IP, 40001, port, 1001, synAck.seq + 1, ACK, guestWindow));
  return { g, port, guestPort: 40001, seq: 1001, ack: (synAck.seq + 1) >>> 0, synAck, host };
}

function optionsOf(f: Frame): Map<number, number[]> {
  const out = new Map<number, number[]>();
  const b = f.bytes;
  for (let i = f.l4 + 20; i < f.l4 + f.tcpHeaderLength; ) {
    if (b[i] === 0) break;
    if (b[i] === 1) { i++; continue; }
    out.set(b[i]!, [...b.subarray(i + 2, i + b[i + 1]!)]);
    i += b[i + 1]!;
  }
  return out;
}

test('handshake: SYN-ACK only once the host accepted, with MSS 1460 and window shift 7', async () => {
  const { synAck } = await open(65535, 2);
  assert.equal(synAck.ack, 1001);
  assert.equal(synAck.src, HOST_IP);
  const options = optionsOf(synAck);
  assert.deepEqual(options.get(2), [0x05, 0xb4]);
  assert.deepEqual(options.get(3), [7]);
  const plain = await open(65535, null);
  assert.equal(optionsOf(plain.synAck).has(3), false, 'no window scaling unless the guest offered it');
});

test('guest → host data is relayed and acknowledged; out-of-order data gets a duplicate ACK and waits for the hole', async () => {
  const s = await open(65535, 0);
  const received: Buffer[] = [];
  s.host.on('data', (d: Buffer) => received.push(d));
  s.g.send(s.g.tcp(HOST_IP, s.guestPort, s.port, s.seq + 5, s.ack, ACK | PSH, 65535, Buffer.from('world')));
  const dup = await s.g.next((f) => f.isTcp(ACK), 'duplicate ACK');
  assert.equal(dup.ack, s.seq);
  s.g.send(s.g.tcp(HOST_IP, s.guestPort, s.port, s.seq, s.ack, ACK | PSH, 65535, Buffer.from('hello')));
  // The hole is filled: the kept "world" goes on with "hello", one ACK covers both.
  const ack = await s.g.next((f) => f.isTcp(ACK) && f.ack === s.seq + 10, 'ACK of helloworld');
  assert.ok(ack.window > 0);
  while (Buffer.concat(received).length < 10) await new Promise((r) => setTimeout(r, 5));
  assert.equal(Buffer.concat(received).toString(), 'helloworld');
});

test('host → guest data respects the guest\'s scaled window and MSS, and a lost segment is sent again', async () => {
  // The guest offers a window of 8 << 9 = 4096 bytes and MSS 1000.
  const s = await open(8, 9, 1000);
  const data = Buffer.alloc(10_000, 7);
  s.host.write(data);
  const first: Frame[] = [];
  while (first.reduce((n, f) => n + f.tcpData.length, 0) < 4096) first.push(await s.g.next((f) => f.isTcp() && f.tcpData.length > 0, 'data'));
  assert.ok(first.every((f) => f.tcpData.length <= 1000));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(s.g.received.filter((f) => new Frame(f).tcpData.length > 0).length, 0, 'nothing beyond the window');
  // Acknowledge nothing: the first segment comes again after the retransmission timeout.
  const again = await s.g.next((f) => f.isTcp() && f.tcpData.length > 0, 'retransmission');
  assert.equal(again.seq, s.ack);
  // Now take everything in order, acknowledging as we go.
  let next = s.ack;
  const got: Uint8Array[] = [];
  s.g.received.length = 0;
  while (next - s.ack < data.length) {
    s.g.send(s.g.tcp(HOST_IP, s.guestPort, s.port, s.seq, next, ACK, 8));
    const f = await s.g.next((x) => x.isTcp() && x.tcpData.length > 0 && x.seq === next, `data at ${next - s.ack}`);
    got.push(f.tcpData.slice());
    next = (next + f.tcpData.length) >>> 0;
  }
  assert.deepEqual(Buffer.concat(got), data);
});

test('FIN both ways: the host ending is a FIN to the guest, the guest\'s FIN ends the host socket', async () => {
  const s = await open(65535, 7);
  s.host.end('bye');
  const data = await s.g.next((f) => f.isTcp() && f.tcpData.length > 0, 'data');
  assert.equal(Buffer.from(data.tcpData).toString(), 'bye');
  const fin = await s.g.next((f) => f.isTcp() && (f.tcpFlags & FIN) !== 0, 'FIN');
  assert.equal(fin.seq, s.ack + 3);
  const ended = once(s.host, 'end');
  s.g.send(s.g.tcp(HOST_IP, s.guestPort, s.port, s.seq, fin.seq + 1, ACK | FIN, 65535));
  await ended;
  const last = await s.g.next((f) => f.isTcp(ACK), 'ACK of the guest FIN');
  assert.equal(last.ack, s.seq + 1);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(s.g.stack.stats.tcpConnections, 0);
});

test('a guest RST closes the host socket; stray segments and refused connections get RSTs', async () => {
  const s = await open(65535, 7);
  const closed = new Promise((resolve) => s.host.once('close', resolve)); // after ECONNRESET: the guest's reset reaches the host
  s.g.send(s.g.tcp(HOST_IP, s.guestPort, s.port, s.seq, s.ack, RST, 0));
  await closed;
  s.g.send(s.g.tcp(HOST_IP, 40002, s.port, 5000, 777, ACK, 65535, Buffer.from('x')));
  const rst = await s.g.next((f) => f.isTcp(RST), 'RST to a stray segment');
  assert.equal(rst.seq, 777);
  // A port nobody listens on: the host refuses, the guest gets RST|ACK for its SYN.
  const { server, port } = await hostServer(() => {});
  await new Promise((r) => server.close(r));
  s.g.send(s.g.tcp(HOST_IP, 40003, port, 9000, 0, SYN, 65535, new Uint8Array(0), synOptions(1460, 7)));
  const refused = await s.g.next((f) => f.isTcp(RST | ACK), 'RST for a refused connection');
  assert.equal(refused.ack, 9001);
  // Addresses of the user network other than the host: refused at once.
  s.g.send(s.g.tcp(0x0a000209, 40004, 80, 1, 0, SYN, 65535));
  assert.equal((await s.g.next((f) => f.isTcp(RST | ACK), 'RST for 10.0.2.9')).ack, 2);
});

test('hostile TCP options end the option walk, never the stack', async () => {
  const s = await open(65535, 7);
  for (const options of [Uint8Array.of(2, 0, 0, 0), Uint8Array.of(3, 3, 255, 0), Uint8Array.of(8, 255, 0, 0), Uint8Array.of(2, 4, 0, 1)]) {
    s.g.send(s.g.tcp(HOST_IP, 41000 + options[1]!, s.port, 1, 0, SYN, 65535, new Uint8Array(0), options));
  }
  const synAcks = [];
  while (synAcks.length < 4) synAcks.push(await s.g.next((f) => f.isTcp(SYN | ACK), 'SYN-ACK'));
  assert.equal(synAcks.length, 4);
});

test('SACK: offered back when the guest offers it; data beyond a hole is kept, reported in SACK blocks, delivered once the hole fills', async () => {
  const g = await SyntheticGuest.create();
  cleanup.push(() => g.close());
  let accept!: (s: Socket) => void;
  const accepted = new Promise<Socket>((resolve) => (accept = resolve));
  const { port } = await hostServer((s) => accept(s));
  g.send(g.tcp(HOST_IP, 40010, port, 5000, 0, SYN, 65535, new Uint8Array(0), Uint8Array.of(2, 4, 5, 180, 1, 1, 4, 2, 1, 3, 3, 7)));
  const host = await accepted;
  const synAck = await g.next((f) => f.isTcp(SYN | ACK), 'SYN-ACK');
  assert.deepEqual(optionsOf(synAck).get(4), [], 'SACK-permitted');
  const ack = synAck.seq + 1;
  g.send(g.tcp(HOST_IP, 40010, port, 5001, ack, ACK, 65535));
  const received: Buffer[] = [];
  host.on('data', (d: Buffer) => received.push(d));
  // Segments 2 and 4 of "aaaa" "bbbb" "cccc" "dddd" arrive first.
  g.send(g.tcp(HOST_IP, 40010, port, 5005, ack, ACK, 65535, Buffer.from('bbbb')));
  g.send(g.tcp(HOST_IP, 40010, port, 5013, ack, ACK, 65535, Buffer.from('dddd')));
  await g.next((f) => f.isTcp(ACK), 'first duplicate ACK');
  const dup = await g.next((f) => f.isTcp(ACK), 'second duplicate ACK');
  assert.equal(dup.ack, 5001);
  const blocks = optionsOf(dup).get(5)!;
  const words = [0, 4, 8, 12].map((i) => ((blocks[i]! << 24) | (blocks[i + 1]! << 16) | (blocks[i + 2]! << 8) | blocks[i + 3]!) >>> 0);
  assert.deepEqual(words, [5005, 5009, 5013, 5017]);
  g.send(g.tcp(HOST_IP, 40010, port, 5001, ack, ACK, 65535, Buffer.from('aaaa')));
  assert.equal((await g.next((f) => f.isTcp(ACK), 'ACK after the first hole')).ack, 5009);
  g.send(g.tcp(HOST_IP, 40010, port, 5009, ack, ACK, 65535, Buffer.from('cccc')));
  assert.equal((await g.next((f) => f.isTcp(ACK), 'ACK after the second hole')).ack, 5017);
  while (Buffer.concat(received).length < 16) await new Promise((r) => setTimeout(r, 5));
  assert.equal(Buffer.concat(received).toString(), 'aaaabbbbccccdddd');
});

test('SACK as a sender: fast recovery resends exactly the holes the guest\'s SACK blocks leave', async () => {
  const g = await SyntheticGuest.create();
  cleanup.push(() => g.close());
  let accept!: (s: Socket) => void;
  const accepted = new Promise<Socket>((resolve) => (accept = resolve));
  const { port } = await hostServer((s) => accept(s));
  g.send(g.tcp(HOST_IP, 40020, port, 7000, 0, SYN, 65535, new Uint8Array(0), Uint8Array.of(2, 4, 3, 232, 1, 1, 4, 2, 1, 3, 3, 7)));
  const host = await accepted;
  const synAck = await g.next((f) => f.isTcp(SYN | ACK), 'SYN-ACK');
  const base = (synAck.seq + 1) >>> 0;
  const ackTo = (ack: number, blocks: [number, number][]): Uint8Array => {
    const options = new Uint8Array(4 + 8 * blocks.length);
    const v = new DataView(options.buffer, options.byteOffset, options.byteLength);
    v.setUint32(0, (1 << 24) | (1 << 16) | (5 << 8) | (2 + 8 * blocks.length));
    blocks.forEach(([s, e], i) => { v.setUint32(4 + 8 * i, (base + s) >>> 0); v.setUint32(8 + 8 * i, (base + e) >>> 0); });
    return g.tcp(HOST_IP, 40020, port, 7001, (base + ack) >>> 0, ACK, 65535, new Uint8Array(0), options);
  };
  g.send(ackTo(0, []));
  host.write(Buffer.alloc(10_000, 1)); // ten segments of the guest's MSS, 1000
  for (let n = 0; n < 10; n++) await g.next((f) => f.isTcp() && f.tcpData.length === 1000, `segment ${n}`);
  // Segments 0 and 2 are lost; the guest holds 1 and 3..9.
  g.send(ackTo(0, [[1000, 2000]]));
  g.send(ackTo(0, [[3000, 10_000], [1000, 2000]]));
  g.send(ackTo(0, [[3000, 10_000], [1000, 2000]]));
  const first = await g.next((f) => f.isTcp() && f.tcpData.length > 0, 'fast retransmit');
  assert.equal((first.seq - base) >>> 0, 0);
  g.send(ackTo(0, [[3000, 10_000], [1000, 2000]]));
  const second = await g.next((f) => f.isTcp() && f.tcpData.length > 0, 'the second hole');
  assert.equal((second.seq - base) >>> 0, 2000);
  assert.equal(second.tcpData.length, 1000);
  g.send(ackTo(10_000, []));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(g.received.filter((f) => new Frame(f).tcpData.length > 0).length, 0, 'nothing else resent');
});

test('delayed ACK: a burst of full segments is acknowledged once, a lone small segment after a short delay', async () => {
  const s = await open(65535, 0);
  let got = 0;
  s.host.on('data', (d: Buffer) => (got += d.length));
  for (let i = 0; i < 3; i++) s.g.send(s.g.tcp(HOST_IP, s.guestPort, s.port, s.seq + i * 1460, s.ack, ACK, 65535, Buffer.alloc(1460, i)));
  const burst = await s.g.next((f) => f.isTcp(ACK), 'ACK of the burst');
  assert.equal(burst.ack, s.seq + 3 * 1460, 'one ACK covers the three segments');
  const start = performance.now();
  s.g.send(s.g.tcp(HOST_IP, s.guestPort, s.port, s.seq + 3 * 1460, s.ack, ACK | PSH, 65535, Buffer.alloc(100, 9)));
  const small = await s.g.next((f) => f.isTcp(ACK), 'ACK of the small segment');
  assert.equal(small.ack, s.seq + 3 * 1460 + 100);
  assert.ok(performance.now() - start >= ACK_DELAY_MS - 1, 'the small segment\'s ACK was delayed');
  while (got < 3 * 1460 + 100) await new Promise((r) => setTimeout(r, 5));
  assert.equal(s.g.received.filter((f) => new Frame(f).isTcp()).length, 0, 'no other ACK');
});
