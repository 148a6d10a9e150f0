import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Reassembly } from '../../src/net/user/reassembly.js';
import { ByteQueue } from '../../src/net/user/byte-queue.js';

const bytes = (s: string): Uint8Array => Buffer.from(s);
const text = (chunks: Uint8Array[]): string => Buffer.concat(chunks).toString();

test('reassembly: out-of-order segments leave in order across the sequence wrap, overlaps trimmed, ranges merged', () => {
  const r = new Reassembly(1 << 20);
  const base = 0xfffffffa; // six bytes before the wrap
  r.add(base, (base + 8) >>> 0, bytes('IJKL'));
  r.add(base, (base + 4) >>> 0, bytes('EFGH'));
  r.add(base, (base + 4) >>> 0, bytes('EFGH')); // duplicate
  r.add(base, (base + 14) >>> 0, bytes('OP'));
  assert.deepEqual(r.ranges(3), [[(base + 4) >>> 0, (base + 12) >>> 0], [(base + 14) >>> 0, (base + 16) >>> 0]]);
  assert.deepEqual(r.ranges(1).length, 1);
  assert.equal(text(r.take(base)), '', 'nothing continues the stream yet');
  // The hole filled up to base+6: the kept bytes from base+6 leave, trimmed.
  assert.equal(text(r.take((base + 6) >>> 0)), 'GHIJKL');
  assert.equal(r.empty, false);
  assert.equal(text(r.take((base + 14) >>> 0)), 'OP');
  assert.equal(r.empty, true);
});

test('reassembly keeps at most its limit', () => {
  const r = new Reassembly(8);
  r.add(0, 10, bytes('12345678'));
  r.add(0, 20, bytes('x'));
  assert.deepEqual(r.ranges(3), [[10, 18]]);
});

test('byte queue: copy any range across chunks, drop from the front', () => {
  const q = new ByteQueue();
  for (const s of ['abc', 'defg', 'hi']) q.push(bytes(s));
  const out = new Uint8Array(5);
  q.copyOut(2, 5, out, 0);
  assert.equal(Buffer.from(out).toString(), 'cdefg');
  q.drop(4);
  assert.equal(q.length, 5);
  const rest = new Uint8Array(5);
  q.copyOut(0, 5, rest, 0);
  assert.equal(Buffer.from(rest).toString(), 'efghi');
});

test('byte queue: the ring wraps, grows while wrapped, and copies in what it is given', () => {
  const q = new ByteQueue();
  const stream = new Uint8Array(60_000).map((_, i) => (i * 7 + (i >> 8)) & 0xff);
  let pushed = 0;
  let dropped = 0;
  const push = (n: number): void => {
    const chunk = stream.slice(pushed, pushed + n);
    q.push(chunk);
    chunk.fill(0); // the queue holds a copy
    pushed += n;
  };
  const check = (): void => {
    const out = new Uint8Array(q.length);
    q.copyOut(0, q.length, out, 0);
    assert.deepEqual(out, stream.subarray(dropped, pushed));
    const middle = new Uint8Array(Math.min(100, q.length));
    q.copyOut(q.length - middle.length, middle.length, middle, 0);
    assert.deepEqual(middle, stream.subarray(pushed - middle.length, pushed));
  };
  push(10_000);
  q.drop(9_000);
  dropped += 9_000;
  push(12_000); // wraps in the first 16 KiB ring
  check();
  push(30_000); // grows while wrapped
  check();
  q.drop(q.length);
  dropped = pushed;
  assert.equal(q.length, 0);
  push(10);
  check();
});
