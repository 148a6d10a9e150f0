/**
 * The DHCP domain search list (option 119): RFC 3397's wire form with compression,
 * splitting over several options, validation in the netdev spec, and the option in
 * a synthetic DHCP exchange.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { checkSearchDomain, encodeSearchList } from '../../src/net/user/search-list.js';
import { parseNetdevSpec, type UserNetdev } from '../../src/net/spec.js';
import { PROTO_UDP } from '../../src/net/user/packet.js';
import { Frame, GUEST_MAC, SyntheticGuest } from './synthetic.js';

/** Decodes a search list with pointers, as a client does (for checking the encoder). */
function decode(list: Uint8Array): string[] {
  const nameAt = (start: number, hops = 0): string => {
    const labels: string[] = [];
    for (let i = start; ; ) {
      const len = list[i]!;
      if (len === 0) return labels.join('.');
      if (len >= 0xc0) {
        assert.ok(hops < 10);
        labels.push(nameAt(((len & 0x3f) << 8) | list[i + 1]!, hops + 1));
        return labels.join('.');
      }
      labels.push(Buffer.from(list.subarray(i + 1, i + 1 + len)).toString());
      i += 1 + len;
    }
  };
  const names: string[] = [];
  for (let i = 0; i < list.length; ) {
    names.push(nameAt(i));
    while (list[i] !== 0 && list[i]! < 0xc0) i += 1 + list[i]!;
    i += list[i] === 0 ? 1 : 2;
  }
  return names;
}

test('RFC 3397\'s example: eng.apple.com and marketing.apple.com share apple.com through a pointer', () => {
  const list = encodeSearchList(['eng.apple.com', 'marketing.apple.com']);
  const expected = Uint8Array.of(
    3, ...Buffer.from('eng'), 5, ...Buffer.from('apple'), 3, ...Buffer.from('com'), 0,
    9, ...Buffer.from('marketing'), 0xc0, 4);
  assert.deepEqual(list, expected);
  assert.deepEqual(decode(list), ['eng.apple.com', 'marketing.apple.com']);
});

test('a name already written whole becomes a bare pointer; unrelated names stay whole', () => {
  const names = ['a.example', 'b.a.example', 'a.example', 'other.test'];
  const list = encodeSearchList(names);
  assert.deepEqual(decode(list), names);
  assert.deepEqual([...list.subarray(list.length - 14, list.length - 12)], [0xc0, 0]); // third name: pointer to offset 0
});

test('dnssearch= repeats, drops a trailing dot, and refuses names that are not domain names', () => {
  const spec = parseNetdevSpec('user,dnssearch=a.test.,dnssearch=b.test') as UserNetdev;
  assert.deepEqual(spec.dnssearch, ['a.test', 'b.test']);
  assert.deepEqual((parseNetdevSpec('user') as UserNetdev).dnssearch, []);
  for (const bad of ['', '.', 'a..b', 'x'.repeat(64) + '.test', 'bad name.test', `${'a.'.repeat(127)}bc`]) {
    assert.throws(() => checkSearchDomain(bad), /dnssearch/);
  }
  assert.throws(() => parseNetdevSpec('user,dnssearch=a..b'), /dnssearch: 'a\.\.b'/);
  const tooMany = Array.from({ length: 40 }, (_, i) => `dnssearch=d${i}.${'x'.repeat(20)}${i}.test`).join(',');
  assert.throws(() => parseNetdevSpec(`user,${tooMany}`), /at most 800 fit a DHCP reply/);
});

const guests: SyntheticGuest[] = [];
after(async () => {
  for (const g of guests) await g.close();
});

function discover(): Uint8Array {
  const m = new Uint8Array(300);
  m[0] = 1; m[1] = 1; m[2] = 6;
  m.set(GUEST_MAC, 28);
  new DataView(m.buffer, m.byteOffset, m.byteLength).setUint32(236, 0x63825363);
  m.set([53, 1, 1, 255], 240);
  return m;
}

/** All option instances of a reply, in order. */
function optionsOf(f: Frame): [number, Uint8Array][] {
  const p = f.udpPayload;
  const out: [number, Uint8Array][] = [];
  for (let i = 240; p[i] !== 255; i += 2 + p[i + 1]!) out.push([p[i]!, p.subarray(i + 2, i + 2 + p[i + 1]!)]);
  return out;
}

test('DHCP offers domain name and search list; a list over 255 bytes spans consecutive options', async () => {
  const many = Array.from({ length: 12 }, (_, i) => `department-${i}.site-${i}.example-${i}.test`);
  const g = await SyntheticGuest.create(`user,domainname=lab.test,${many.map((d) => `dnssearch=${d}`).join(',')}`);
  guests.push(g);
  g.send(g.udp(0xffffffff, 68, 67, discover()));
  const offer = await g.next((f) => f.protocol === PROTO_UDP && f.dstPort === 68, 'offer');
  const options = optionsOf(offer);
  assert.equal(Buffer.from(options.find(([c]) => c === 15)![1]).toString(), 'lab.test');
  const parts = options.filter(([c]) => c === 119);
  assert.ok(parts.length >= 2, 'split over several options');
  assert.equal(parts[0]![1].length, 255);
  const joined = Buffer.concat(parts.map(([, b]) => b));
  assert.deepEqual(decode(joined), many);
  assert.ok(offer.udpPayload.length > 548, 'the reply grows past 548 bytes to fit');
});
