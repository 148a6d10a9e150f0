/**
 * SpareBuffers: views of exactly the size asked for, the smallest spare that
 * fits reused, and a bounded number of bounded buffers kept.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SpareBuffers } from '../../src/emulator/virtio/spare-buffers.js';

test('take() gives views of the size asked for and reuses the smallest spare that fits', () => {
  const spares = new SpareBuffers();
  const big = spares.take(65536);
  const small = spares.take(4096);
  assert.equal(big.length, 65536);
  assert.equal(small.length, 4096);
  spares.give(big);
  spares.give(small);
  const again = spares.take(1024);
  assert.equal(again.length, 1024);
  assert.equal(again.buffer, small.buffer, 'the 4 KiB spare, not the 64 KiB one');
  assert.equal(spares.take(65536).buffer, big.buffer);
  assert.notEqual(spares.take(65536).buffer, big.buffer, 'a buffer is handed out once until it is given back');
});

test('give() keeps at most 8 spares of at most 1 MiB and no empty ones', () => {
  const spares = new SpareBuffers();
  const huge = spares.take(2 << 20);
  spares.give(huge);
  assert.notEqual(spares.take(2 << 20).buffer, huge.buffer, 'a 2 MiB buffer is not kept');
  const taken = Array.from({ length: 10 }, () => spares.take(512));
  for (const t of taken) spares.give(t);
  const kept = new Set(taken.map((t) => t.buffer));
  const reused = Array.from({ length: 10 }, () => spares.take(512)).filter((t) => kept.has(t.buffer));
  assert.equal(reused.length, 8);
  const empty = new SpareBuffers();
  const none = empty.take(0);
  empty.give(none);
  empty.give(new Uint8Array(512));
  assert.notEqual(empty.take(0).buffer, none.buffer, 'an empty buffer is not kept: the smallest spare is the 512-byte one');
});
