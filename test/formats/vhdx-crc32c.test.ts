/**
 * crc32c (VHDX checksums) against a bit-at-a-time reference: the standard check
 * value, buffers of data, of zeroes and of both (zero runs of every kind of
 * length and position, which crc32c skips piece by piece), with and without a
 * checksum field read as zero.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c } from '../../src/block/formats/vhdx/crc32c.js';
import { makeRng } from '../helpers/pattern.js';

function reference(buf: Uint8Array, zeroAt = -1): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) {
    c ^= zeroAt >= 0 && i >= zeroAt && i < zeroAt + 4 ? 0 : buf[i]!;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

test('crc32c: the check value of "123456789" is 0xe3069283', () => {
  assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
});

test('crc32c: data, zeroes and zero runs anywhere match the reference', () => {
  const rng = makeRng(0xc4c);
  for (let round = 0; round < 60; round++) {
    const length = round < 10 ? round * 511 : rng.int(1, 70000);
    const buf = new Uint8Array(length);
    // Stretches of random bytes between runs of zeroes (some rounds all zero).
    for (let at = 0; round % 7 !== 0 && at < length;) {
      const n = rng.int(1, 3000);
      for (let i = at; i < Math.min(length, at + n); i++) buf[i] = rng.int(0, 255);
      at += n + rng.int(0, 5000);
    }
    const zeroAt = length >= 8 && round % 2 === 0 ? 4 : -1;
    assert.equal(crc32c(buf, zeroAt), reference(buf, zeroAt), `round ${round}, ${length} bytes`);
    const view = buf.subarray(3, length);
    assert.equal(crc32c(view), reference(view), `round ${round}, unaligned view`);
  }
});
