import assert from 'node:assert/strict';
import { test } from 'node:test';
import { finish, sum } from '../../src/net/user/checksum.js';

/** RFC 1071's definition, one big-endian byte pair at a time: the reference. */
function referenceChecksum(bytes: Uint8Array, offset: number, length: number, initial: number): number {
  let acc = initial;
  for (let i = 0; i < length; i += 2) acc += (bytes[offset + i]! << 8) | (i + 1 < length ? bytes[offset + i + 1]! : 0);
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 0x10000);
  return ~acc & 0xffff;
}

test('sum: the word-at-a-time sum equals the byte-pair definition at every alignment and length', () => {
  const buffer = new Uint8Array(4096 + 8);
  let seed = 12345;
  for (let i = 0; i < buffer.length; i++) buffer[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
  for (const view of [buffer, buffer.subarray(1), buffer.subarray(2), buffer.subarray(3)]) {
    for (const offset of [0, 1, 2, 3, 14, 34, 35]) {
      for (const length of [0, 1, 2, 3, 4, 5, 7, 20, 21, 1480, 1481, 4000]) {
        for (const initial of [0, 0x1fffe, 0x7fff1234]) {
          assert.equal(finish(sum(view, offset, length, initial)), referenceChecksum(view, offset, length, initial), `offset ${offset} length ${length} initial ${initial}`);
        }
      }
    }
  }
});

test('sum: all-ones data (a sum of 0xffff words) and a verifying checksum', () => {
  const ones = new Uint8Array(1500).fill(0xff);
  assert.equal(finish(sum(ones, 0, 1500)), 0);
  const packet = new Uint8Array(64).map((_, i) => i * 7);
  packet[10] = 0;
  packet[11] = 0;
  const c = finish(sum(packet, 0, 64));
  packet[10] = c >> 8;
  packet[11] = c & 0xff;
  assert.equal(finish(sum(packet, 0, 64)), 0);
  assert.equal(finish(sum(packet.subarray(2), 0, 62, sum(packet, 0, 2))), 0);
});
