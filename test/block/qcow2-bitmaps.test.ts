import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { parseBitmapDirectory } from '../../src/block/formats/qcow2/bitmaps.js';
import { mustRun, qemuImg, qemuIo, scratchDir, tsemu } from '../helpers/peers.js';

/** One directory entry: fixed part, extra data, name, padded to 8 bytes. */
function entry(o: { flags?: number; type?: number; granularityBits?: number; name?: string; extra?: number }): Uint8Array {
  const name = new TextEncoder().encode(o.name ?? 'b');
  const extra = o.extra ?? 0;
  const out = new Uint8Array(Math.ceil((24 + extra + name.length) / 8) * 8);
  const dv = new DataView(out.buffer);
  dv.setUint32(12, o.flags ?? 0);
  dv.setUint8(16, o.type ?? 1);
  dv.setUint8(17, o.granularityBits ?? 16);
  dv.setUint16(18, name.length);
  dv.setUint32(20, extra);
  out.set(name, 24 + extra);
  return out;
}

test('bitmap directory entries: flags in qemu-img\'s order, names, granularity, entries padded to 8 bytes', () => {
  const a = entry({ flags: 3, name: 'first', granularityBits: 12 });
  const b = entry({ flags: 4, name: 'second-with-extra', extra: 5 });
  const dir = new Uint8Array(a.length + b.length);
  dir.set(a);
  dir.set(b, a.length);
  assert.deepEqual(parseBitmapDirectory(dir, 2), [
    { flags: ['in-use', 'auto'], name: 'first', granularity: 4096 },
    { flags: [], name: 'second-with-extra', granularity: 65536 },
  ]);
});

test('bitmap directory entries that break the spec are refused by rule', () => {
  const cases: [Uint8Array, number, RegExp][] = [
    [entry({}), 2, /entry 1: extends past the end/],
    [entry({ flags: 8 }), 1, /reserved flags 0x8/],
    [entry({ type: 2 }), 1, /unknown bitmap type 2/],
    [entry({ granularityBits: 8 }), 1, /granularity bits 8/],
    [entry({ granularityBits: 32 }), 1, /granularity bits 32/],
    [entry({ extra: 8 }), 1, /extra data/],
    [entry({ name: '' }), 1, /name size 0/],
  ];
  for (const [dir, count, message] of cases) assert.throws(() => parseBitmapDirectory(dir, count), message);
});

test('info and measure list and size persistent bitmaps as qemu-img does; stale bitmaps are not listed', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const img = path.join(dir, 'b.qcow2');
    await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', img, '64M']), 'create');
    await mustRun(qemuImg(['bitmap', '--add', img, 'b1']), 'bitmap b1');
    await mustRun(qemuImg(['bitmap', '--add', '-g', '4k', '--disable', img, 'second']), 'bitmap second');
    await mustRun(qemuIo(['-c', 'write 0 1M', img]), 'write (sets bits in b1)');
    for (const args of [['info'], ['info', '--output=json'], ['measure', '-O', 'qcow2'], ['measure', '-O', 'qcow2', '--output=json']]) {
      const q = await mustRun(qemuImg([...args, img]), `qemu-img ${args.join(' ')}`);
      const t = await tsemu(['img', ...args, img]);
      assert.equal(t.code, 0, t.stderr);
      assert.equal(t.stdout.replace(/disk size: .*\n/, ''), q.stdout.replace(/disk size: .*\n/, ''), args.join(' '));
    }
    const check = await tsemu(['img', 'check', img]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    // A write by tsemu (which does not keep bitmaps) clears the autoclear bit: the bitmaps are stale.
    assert.equal((await tsemu(['io', '-c', 'write 2M 4k', img])).code, 0);
    const info = JSON.parse((await tsemu(['img', 'info', '--output=json', img])).stdout) as {
      'format-specific': { data: Record<string, unknown> };
    };
    assert.equal('bitmaps' in info['format-specific'].data, false);
  } finally {
    await cleanup();
  }
});
