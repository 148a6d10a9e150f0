import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fragment, Reassembler } from '../../src/net/user/fragments.js';
import { finish, sum } from '../../src/net/user/checksum.js';
import { OutPacket, PROTO_UDP } from '../../src/net/user/packet.js';

function datagram(length: number, id = 7): Uint8Array {
  const p = new OutPacket(PROTO_UDP, 0x0a00020f, 0x0a000202, length);
  for (let i = 8; i < length; i++) p.frame[p.l4 + i] = i & 255;
  p.view.setUint16(p.l4 + 4, length);
  return p.finalize(new Uint8Array(6), new Uint8Array(6), id);
}

const feed = (r: Reassembler, f: Uint8Array): Uint8Array | null => {
  const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
  return r.add(f, v, 20, v.getUint16(16));
};

test('fragment() cuts at the MTU in 8-byte units with valid headers; the reassembler puts any order back together', () => {
  const whole = datagram(5000);
  const pieces = fragment(whole, 1500);
  assert.equal(pieces.length, 4);
  for (const [i, p] of pieces.entries()) {
    const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
    assert.ok(p.length - 14 <= 1500);
    assert.equal(finish(sum(p, 14, 20)), 0);
    assert.equal((v.getUint16(20) & 0x2000) !== 0, i < 3);
    assert.equal((v.getUint16(20) & 0x1fff) * 8, i * 1480);
  }
  assert.deepEqual(fragment(datagram(100), 1500).length, 1);
  const r = new Reassembler();
  const order = [2, 0, 3, 1];
  let out: Uint8Array | null = null;
  for (const i of order) out = feed(r, pieces[i]!);
  assert.ok(out);
  const expected = whole.slice();
  assert.deepEqual(out!.subarray(34), expected.subarray(34));
  assert.equal(finish(sum(out!, 14, 20)), 0);
  assert.equal(new DataView(out!.buffer, out!.byteOffset, out!.byteLength).getUint16(20), 0);
});

test('overlapping fragments drop the datagram; a bad one never crashes', () => {
  const pieces = fragment(datagram(3000, 9), 1500);
  const r = new Reassembler();
  assert.equal(feed(r, pieces[0]!), null);
  const overlap = pieces[1]!.slice();
  const v = new DataView(overlap.buffer, overlap.byteOffset, overlap.byteLength);
  v.setUint16(20, (v.getUint16(20) & 0xe000) | (1000 / 8));
  assert.equal(feed(r, overlap), null);
  // The datagram was dropped: the remaining real fragments do not complete it.
  assert.equal(feed(r, pieces[1]!), null);
  assert.equal(feed(r, pieces[2]!), null);
});
