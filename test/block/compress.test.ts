import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import { compressCluster, decompressCluster, type CompressionType, withCompressedClusters } from '../../src/block/compress/index.js';
import { decodeCluster, encodeCluster, zstdBackend } from '../../src/block/compress/codec.js';
import { CodecPool } from '../../src/block/compress/pool.js';
import { scanZstdFrame } from '../../src/block/compress/zstd-frame.js';
import { NativeZstdQueue } from '../../src/block/compress/zstd-native.js';
import { ImageFormatError } from '../../src/block/node.js';
import { COMPRESSED, compressedOffsetBits, getU64, l2EntryAt, readLayout } from '../helpers/qcow2-layout.js';
import { makeRng } from '../helpers/pattern.js';
import { ROOT, mustRun, qemuImg, scratchDir } from '../helpers/peers.js';
import { runBounded } from '../helpers/bounded.js';

const TYPES: CompressionType[] = ['zlib', 'zstd'];

/** Compressible but not trivial: text-like runs mixed with random bytes, per cluster. */
function clusterData(seed: number, size: number): Uint8Array {
  const rng = makeRng(seed);
  const out = new Uint8Array(size);
  const words = ['tsemu ', 'qcow2 ', 'cluster ', 'compressed ', 'sector '];
  let pos = 0;
  while (pos < size) {
    const w = Buffer.from(words[Math.floor(rng.next() * words.length)]!);
    out.set(w.subarray(0, Math.min(w.length, size - pos)), pos);
    pos += w.length;
    if (rng.next() < 0.05 && pos < size) out[pos++] = Math.floor(rng.next() * 256);
  }
  return out;
}

function randomData(seed: number, size: number): Uint8Array {
  const rng = makeRng(seed);
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = Math.floor(rng.next() * 256);
  return out;
}

test('round trips for both types and cluster sizes from 512 B to 2 MiB, with sector padding after the stream', async () => {
  for (const type of TYPES) {
    for (const size of [512, 4096, 65536, 2 << 20]) {
      const data = clusterData(size, size);
      const packed = await compressCluster(type, data);
      assert.ok(packed && packed.length < size, `${type} ${size}: compresses`);
      const padded = new Uint8Array(Math.ceil((packed.length + 1) / 512) * 512).fill(0xee);
      padded.set(packed);
      const out = new Uint8Array(size);
      await decompressCluster(type, padded, out);
      assert.deepEqual(out, data, `${type} ${size}: round trip`);
    }
  }
});

test('incompressible data gives null', async () => {
  for (const type of TYPES) assert.equal(await compressCluster(type, randomData(7, 65536)), null, type);
});

test('many requests in flight complete in parallel and in any order', async () => {
  const clusters = Array.from({ length: 24 }, (_, i) => clusterData(100 + i, 65536));
  const packed = await Promise.all(clusters.map((c, i) => compressCluster(TYPES[i % 2]!, c)));
  const out = await Promise.all(
    packed.map(async (p, i) => {
      const dst = new Uint8Array(65536);
      await decompressCluster(TYPES[i % 2]!, p!, dst);
      return dst;
    }),
  );
  out.forEach((o, i) => assert.deepEqual(o, clusters[i]));
});

test('corrupt, truncated and oversized streams are clear ImageFormatErrors', async () => {
  const data = clusterData(3, 65536);
  for (const type of TYPES) {
    const packed = (await compressCluster(type, data))!;
    const cut = packed.subarray(0, Math.floor(packed.length / 2));
    await assert.rejects(decompressCluster(type, cut, new Uint8Array(65536)), ImageFormatError, `${type}: truncated`);
    const garbage = randomData(9, 4096);
    await assert.rejects(decompressCluster(type, garbage, new Uint8Array(65536)), ImageFormatError, `${type}: garbage`);
    await assert.rejects(decompressCluster(type, packed, new Uint8Array(32768)), ImageFormatError, `${type}: too long`);
    await assert.rejects(decompressCluster(type, packed, new Uint8Array(131072)), ImageFormatError, `${type}: too short`);
  }
  await assert.rejects(compressCluster('lz4' as CompressionType, data), /Unknown compression type 'lz4'/);
  assert.throws(() => scanZstdFrame(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0x08, 0, 0, 0])), /reserved bit/);
  assert.throws(() => scanZstdFrame(new Uint8Array([1, 2, 3, 4, 5, 6])), /magic number/);
});

test('the thread\'s reused zstd contexts give the same frame every time and survive a corrupt stream', async () => {
  const data = clusterData(11, 65536);
  const first = (await encodeCluster('zstd', data))!;
  const other = (await encodeCluster('zstd', clusterData(12, 65536)))!;
  assert.deepEqual(await encodeCluster('zstd', data), first, 'a context reused after other data gives the same bytes');
  assert.equal(scanZstdFrame(first).contentSize, 65536, 'the frame declares its content size');
  await assert.rejects(decodeCluster('zstd', first.subarray(0, 100), 65536), ImageFormatError);
  assert.deepEqual(await decodeCluster('zstd', other, 65536), clusterData(12, 65536), 'decodes after a failed decode');
  assert.deepEqual(await decodeCluster('zstd', first, 65536), data);
});

test('libzstd and the WebAssembly fallback write frames each other decodes, and refuse what does not fit', async () => {
  const native = await zstdBackend('libzstd');
  const wasm = await zstdBackend('wasm');
  assert.ok(native, 'libzstd.so.1 loads on this host');
  assert.ok(wasm);
  const data = clusterData(13, 65536);
  for (const [from, to] of [[native, wasm], [wasm, native]] as const) {
    const frame = new Uint8Array(65536);
    const n = from.compress(data, frame);
    assert.ok(n > 0 && n < 65536, `${from.name}: compresses`);
    assert.equal(scanZstdFrame(frame).length, n, `${from.name}: one whole frame`);
    const out = new Uint8Array(65536);
    assert.equal(to.decompress(frame.subarray(0, n), out), 65536, `${to.name} decodes ${from.name}'s frame`);
    assert.deepEqual(out, data);
    assert.equal(from.compress(randomData(14, 65536), new Uint8Array(65535)), -1, `${from.name}: no room`);
    assert.throws(() => to.decompress(frame.subarray(0, n), new Uint8Array(1000)), `${to.name}: output too small`);
  }
});

test('libzstd on libuv threads: more calls than slots all finish, and failed calls give their slots back', async () => {
  const queue = new NativeZstdQueue(3, 2);
  const data = Array.from({ length: 10 }, (_, i) => clusterData(80 + i, 65536));
  const frames = data.map(() => new Uint8Array(65536));
  const lengths = await queue.compressAll(data, frames);
  const outs = data.map(() => new Uint8Array(65536));
  const settled = await Promise.allSettled(
    lengths.map((n, i) => queue.decompress(frames[i]!.subarray(0, i % 3 === 0 ? n - 9 : n), outs[i]!)),
  );
  settled.forEach((r, i) => {
    if (i % 3 === 0) assert.equal(r.status, 'rejected', `cut frame ${i} fails`);
    else assert.deepEqual(r.status === 'fulfilled' && outs[i], data[i], `frame ${i} round trips`);
  });
  assert.deepEqual(await queue.compressAll([randomData(15, 65536)], [new Uint8Array(65535)]), [-1], 'no room');
  assert.deepEqual(await queue.compressAll([], []), [], 'an empty batch');
});

test('the worker pool runs zstd too (the engine where libzstd is missing)', async () => {
  const pool = new CodecPool(1);
  try {
    const data = clusterData(16, 65536);
    const packed = await pool.run('compress', 'zstd', data);
    assert.deepEqual(await pool.run('decompress', 'zstd', packed!, 65536), data);
  } finally {
    await pool.close();
  }
});

test('a cluster that is a view into a larger buffer travels alone, and the caller\'s buffer stays usable', async () => {
  const big = Buffer.alloc(4 * 65536);
  for (let i = 0; i < 4; i++) big.set(clusterData(20 + i, 65536), i * 65536);
  for (const type of TYPES) {
    const packed = await Promise.all([0, 1, 2, 3].map((i) => compressCluster(type, big.subarray(i * 65536, (i + 1) * 65536))));
    assert.equal(big.byteLength, 4 * 65536, `${type}: the caller's buffer is not detached`);
    for (let i = 0; i < 4; i++) {
      const out = new Uint8Array(65536);
      await decompressCluster(type, packed[i]!, out);
      assert.deepEqual(out, clusterData(20 + i, 65536), `${type}: cluster ${i}`);
    }
  }
});

test('requests submitted together are batched, yet a corrupt one fails alone; shared memory is read in place', async () => {
  for (const type of TYPES) {
    const data = Array.from({ length: 12 }, (_, i) => clusterData(40 + i, 65536));
    const shared = Buffer.from(new SharedArrayBuffer(12 * 65536));
    data.forEach((d, i) => shared.set(d, i * 65536));
    const packed = await Promise.all(data.map((_, i) => compressCluster(type, shared.subarray(i * 65536, (i + 1) * 65536))));
    const outs = data.map(() => new Uint8Array(65536));
    const settled = await Promise.allSettled(
      packed.map((p, i) => decompressCluster(type, i === 5 ? p!.subarray(0, 40) : p!, outs[i]!)),
    );
    settled.forEach((r, i) => {
      if (i === 5) assert.ok(r.status === 'rejected' && r.reason instanceof ImageFormatError, `${type}: the cut stream fails`);
      else {
        assert.equal(r.status, 'fulfilled', `${type}: request ${i} succeeds`);
        assert.deepEqual(outs[i], data[i], `${type}: request ${i} round trips`);
      }
    });
  }
});

test('a worker pool that is idle does not keep the process alive and can be closed', async () => {
  const pool = new CodecPool(2);
  const r = await pool.run('compress', 'zlib', clusterData(1, 4096));
  assert.ok(r);
  await pool.close();
  await assert.rejects(pool.run('compress', 'zlib', clusterData(1, 4096)), /pool is closed/);
});

test('the built dist/ runs its .js workers, and a process that used the pool exits by itself', async () => {
  const script =
    `const m = await import(${JSON.stringify(path.join(ROOT, 'dist/block/compress/index.js'))});` +
    `for (const t of ['zlib', 'zstd']) { const d = new Uint8Array(65536).fill(5); const o = new Uint8Array(65536);` +
    `await m.decompressCluster(t, await m.compressCluster(t, d), o); if (!o.every((b) => b === 5)) process.exit(3); }` +
    `console.log('done');`;
  const r = await runBounded(process.execPath, ['--input-type=module', '-e', script]);
  assert.equal(r.hung, false, 'the idle pool kept the process alive');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'done\n');
});

test('without libzstd, zstd runs on the worker pool with the WebAssembly build, and libzstd decodes its frames', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    // An empty file where the loader looks first: libzstd.so.1 fails to load in that process.
    await writeFile(path.join(dir, 'libzstd.so.1'), '');
    const script =
      `const n = await import(${JSON.stringify(path.join(ROOT, 'dist/block/compress/zstd-native.js'))});` +
      `const m = await import(${JSON.stringify(path.join(ROOT, 'dist/block/compress/index.js'))});` +
      `const d = new Uint8Array(2 * 65536); for (let i = 0; i < d.length; i++) d[i] = (i * 7) % 251 & 0xf0;` +
      `const frames = await m.withCompressedClusters('zstd', d, 65536, async (p) => p.map((f) => Buffer.from(f).toString('hex')));` +
      `console.log(JSON.stringify({ native: n.hasNativeZstd(), frames }));`;
    const r = await runBounded('env', [`LD_LIBRARY_PATH=${dir}`, process.execPath, '--input-type=module', '-e', script]);
    assert.equal(r.code, 0, r.stderr);
    const { native, frames } = JSON.parse(r.stdout) as { native: boolean; frames: string[] };
    assert.equal(native, false, 'libzstd is hidden from the child');
    const native2 = (await zstdBackend('libzstd'))!;
    frames.forEach((hex, c) => {
      const out = new Uint8Array(65536);
      assert.equal(native2.decompress(Buffer.from(hex, 'hex'), out), 65536, `cluster ${c} decodes`);
      assert.deepEqual(out, Uint8Array.from(out, (_, i) => ((c * 65536 + i) * 7) % 251 & 0xf0), `cluster ${c} round trips`);
    });
  } finally {
    await cleanup();
  }
});

test('decodes the compressed clusters qemu-img convert -c writes (zlib and zstd)', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const clusters = 8;
    const source = new Uint8Array(clusters * 65536);
    for (let i = 0; i < clusters; i++) source.set(clusterData(50 + i, 65536), i * 65536);
    const raw = path.join(dir, 'src.raw');
    await writeFile(raw, source);
    for (const type of TYPES) {
      const img = path.join(dir, `c-${type}.qcow2`);
      await mustRun(
        qemuImg(['convert', '-c', '-f', 'raw', '-O', 'qcow2', '-o', `compression_type=${type}`, raw, img]),
        'qemu-img convert -c',
      );
      const buf = new Uint8Array(await readFile(img));
      const layout = readLayout(buf);
      const x = compressedOffsetBits(layout);
      for (let c = 0; c < clusters; c++) {
        const entry = getU64(buf, l2EntryAt(buf, layout, c));
        assert.ok(entry & COMPRESSED, `${type}: cluster ${c} is stored compressed`);
        const descriptor = entry & ((1n << 62n) - 1n);
        const hostOffset = Number(descriptor & ((1n << BigInt(x)) - 1n));
        const sectors = Number(descriptor >> BigInt(x)) + 1;
        const length = sectors * 512 - (hostOffset % 512);
        const dst = new Uint8Array(65536);
        await decompressCluster(type, buf.subarray(hostOffset, Math.min(buf.length, hostOffset + length)), dst);
        assert.deepEqual(dst, source.subarray(c * 65536, (c + 1) * 65536), `${type}: cluster ${c}`);
      }
    }
  } finally {
    await cleanup();
  }
});

test('withCompressedClusters compresses every cluster in place, pads the last one, and leaves the caller\'s data alone', async () => {
  for (const type of TYPES) {
    const data = new Uint8Array(3 * 65536 + 1000);
    data.set(clusterData(60, 65536), 0);
    data.set(randomData(61, 65536), 65536);
    data.set(clusterData(62, 65536 + 1000), 2 * 65536);
    const copy = data.slice();
    const outs = await withCompressedClusters(type, data, 65536, async (packed) => {
      assert.equal(packed.length, 4, `${type}: one result per cluster, the short last one included`);
      assert.equal(packed[1], null, `${type}: random data does not shrink`);
      return Promise.all(packed.map(async (p) => {
        if (!p) return null;
        const out = new Uint8Array(65536);
        await decompressCluster(type, p, out);
        return out;
      }));
    });
    assert.deepEqual(data, copy, `${type}: the caller's data is unchanged`);
    assert.deepEqual(outs[0], data.subarray(0, 65536), `${type}: cluster 0`);
    assert.deepEqual(outs[2], data.subarray(2 * 65536, 3 * 65536), `${type}: cluster 2`);
    const last = new Uint8Array(65536);
    last.set(data.subarray(3 * 65536));
    assert.deepEqual(outs[3], last, `${type}: the last cluster, zero-padded`);
  }
});

test('withCompressedClusters reads whole clusters in shared memory where they are, and leaves them unchanged', async () => {
  for (const type of TYPES) {
    const shared = Buffer.from(new SharedArrayBuffer(2 * 65536));
    shared.set(clusterData(70, 65536), 0);
    shared.set(clusterData(71, 65536), 65536);
    const copy = Buffer.from(shared);
    const outs = await withCompressedClusters(type, shared, 65536, (packed) =>
      Promise.all(packed.map(async (p) => {
        const out = new Uint8Array(65536);
        await decompressCluster(type, p!, out);
        return out;
      })));
    assert.deepEqual(shared, copy, `${type}: the shared data is unchanged`);
    assert.deepEqual(outs[0], new Uint8Array(copy.subarray(0, 65536)), `${type}: cluster 0`);
    assert.deepEqual(outs[1], new Uint8Array(copy.subarray(65536)), `${type}: cluster 1`);
  }
});
