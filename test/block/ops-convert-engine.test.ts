import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import type { BlockExtent, BlockNode } from '../../src/block/node.js';
import { chainBlockStatus } from '../../src/block/ops/chain.js';
import { CHUNK, copySegments, zeroRuns, type CopyOptions } from '../../src/block/ops/copy-engine.js';

/**
 * An in-memory node with cluster-granular allocation (data, zero or unallocated)
 * and an optional backing node; it records the requests it gets.
 */
class MemNode implements BlockNode {
  readonly driver = 'mem';
  readonly file = null;
  readonly readOnly = false;
  readonly clusters = new Map<number, Buffer | 'zero'>();
  readonly log: string[] = [];
  constructor(
    readonly filename: string,
    private readonly bytes: number,
    readonly granularity: number,
    public backing: BlockNode | null = null,
    compressing = false,
  ) {
    if (compressing) {
      this.writeCompressed = async (offset, buf) => {
        this.log.push(`compressed ${offset} ${buf.length}`);
        this.store(offset, buf);
      };
    }
  }
  size(): number { return this.bytes; }
  async read(offset: number, buf: Uint8Array): Promise<void> {
    for (let p = 0; p < buf.length; ) {
      const c = Math.floor((offset + p) / this.granularity);
      const inC = (offset + p) % this.granularity;
      const n = Math.min(buf.length - p, this.granularity - inC);
      const v = this.clusters.get(c);
      if (v === 'zero') buf.fill(0, p, p + n);
      else if (v) buf.set(v.subarray(inC, inC + n), p);
      else if (this.backing && offset + p < this.backing.size()) {
        const m = Math.min(n, this.backing.size() - offset - p);
        await this.backing.read(offset + p, buf.subarray(p, p + m));
        buf.fill(0, p + m, p + n);
      } else buf.fill(0, p, p + n);
      p += n;
    }
  }
  private cluster(c: number): Buffer {
    let v = this.clusters.get(c);
    if (!v || v === 'zero') {
      v = Buffer.alloc(this.granularity); // tests write whole clusters over unallocated ones
      this.clusters.set(c, v);
    }
    return v;
  }
  async write(offset: number, buf: Uint8Array): Promise<void> {
    this.log.push(`write ${offset} ${buf.length}`);
    this.store(offset, buf);
  }
  private store(offset: number, buf: Uint8Array): void {
    for (let p = 0; p < buf.length; ) {
      const c = Math.floor((offset + p) / this.granularity);
      const inC = (offset + p) % this.granularity;
      const n = Math.min(buf.length - p, this.granularity - inC);
      this.cluster(c).set(buf.subarray(p, p + n), inC);
      p += n;
    }
  }
  async writeZeroes(offset: number, length: number): Promise<void> {
    this.log.push(`zero ${offset} ${length}`);
    for (let p = offset; p < offset + length; p += this.granularity) this.clusters.set(p / this.granularity, 'zero');
  }
  async discard(): Promise<void> {}
  async flush(): Promise<void> {}
  async blockStatus(offset: number, length: number): Promise<BlockExtent> {
    const state = (o: number) => {
      const v = this.clusters.get(Math.floor(o / this.granularity));
      return v === undefined ? 'none' : v === 'zero' ? 'zero' : 'data';
    };
    const first = state(offset);
    let end = Math.min(offset + length, (Math.floor(offset / this.granularity) + 1) * this.granularity);
    while (end < offset + length && state(end) === first) end = Math.min(offset + length, end + this.granularity);
    return {
      offset, length: end - offset, allocated: first !== 'none', data: first === 'data',
      zero: first === 'zero' || (first === 'none' && !this.backing), compressed: false, hostOffset: null,
    };
  }
  async truncate(): Promise<void> {}
  async allocatedSize(): Promise<number> { return 0; }
  async close(): Promise<void> {}
  writeCompressed?: (offset: number, buf: Uint8Array) => Promise<void>;
}

const G = 64 * 1024;

function filled(n: number, byte: number): Buffer {
  return Buffer.alloc(n, byte);
}

function copyOpts(target: BlockNode, source: BlockNode, extra: Partial<CopyOptions> = {}): CopyOptions {
  return {
    target,
    segments: [{ source, base: null, sourceOffset: 0, targetOffset: 0, length: source.size() }],
    skipUnallocated: false,
    sparseSize: 4096,
    targetIsZero: true,
    compress: false,
    inFlight: 8,
    outOfOrder: false,
    rateLimit: 0,
    ...extra,
  };
}

async function content(n: BlockNode): Promise<Buffer> {
  const b = Buffer.alloc(n.size());
  await n.read(0, b);
  return b;
}

test('chainBlockStatus finds the layer that allocates a range, and zeroes past the chain', async () => {
  const base = new MemNode('base', 8 * G, G);
  const top = new MemNode('top', 8 * G, G, base);
  base.clusters.set(1, filled(G, 1));
  top.clusters.set(2, filled(G, 2));
  top.clusters.set(3, 'zero');
  assert.deepEqual(await chainBlockStatus(top, 0, 8 * G), { offset: 0, length: G, allocated: false, zero: true, depth: -1 });
  assert.deepEqual(await chainBlockStatus(top, G, 7 * G), { offset: G, length: G, allocated: true, zero: false, depth: 1 });
  assert.deepEqual(await chainBlockStatus(top, 2 * G, 6 * G), { offset: 2 * G, length: G, allocated: true, zero: false, depth: 0 });
  assert.deepEqual(await chainBlockStatus(top, 3 * G, 5 * G), { offset: 3 * G, length: G, allocated: true, zero: true, depth: 0 });
  // Above base: base's own data counts as "not allocated above base".
  assert.deepEqual(await chainBlockStatus(top, G, 7 * G, base), { offset: G, length: G, allocated: false, zero: false, depth: -1 });
});

test('chainBlockStatus: a backing node shorter than its overlay reads as zeroes past its end', async () => {
  const base = new MemNode('base', 2 * G, G);
  base.clusters.set(0, filled(G, 1));
  base.clusters.set(1, filled(G, 1));
  const top = new MemNode('top', 4 * G, G, base);
  const st = await chainBlockStatus(top, 2 * G, 2 * G);
  assert.equal(st.zero, true);
  assert.equal(st.allocated, false);
});

test('copy: only data is written, zero runs in data are left to a zero target, content is identical', async () => {
  const src = new MemNode('src', 64 * G, G);
  src.clusters.set(0, filled(G, 7));
  const mixed = filled(G, 0);
  mixed[10] = 1; // first 4k unit is data, the rest zero
  src.clusters.set(5, mixed);
  src.clusters.set(9, filled(G, 0)); // data that happens to be zero
  src.clusters.set(40, 'zero');
  const dst = new MemNode('dst', 64 * G, 4096);
  await copySegments(copyOpts(dst, src));
  assert.deepEqual(await content(dst), await content(src));
  assert.deepEqual(dst.log, [`write 0 ${G}`, `write ${5 * G} 4096`]);
});

test('copy: -S 0 writes every byte, zeroes included', async () => {
  const src = new MemNode('src', 4 * G, G);
  src.clusters.set(1, filled(G, 3));
  const dst = new MemNode('dst', 4 * G, G);
  await copySegments(copyOpts(dst, src, { sparseSize: 0 }));
  assert.deepEqual(await content(dst), await content(src));
  assert.equal(dst.clusters.size, 4);
  assert.ok(dst.log.every((l) => l.startsWith('write')));
});

test('copy into a target that is not zero writes zeroes where the source reads as zeroes', async () => {
  const src = new MemNode('src', 4 * G, G);
  src.clusters.set(0, filled(G, 1));
  const dst = new MemNode('dst', 4 * G, G);
  for (let c = 0; c < 4; c++) dst.clusters.set(c, filled(G, 9));
  await copySegments(copyOpts(dst, src, { targetIsZero: false }));
  assert.deepEqual(await content(dst), await content(src));
});

test('copy with skipUnallocated (convert -B, commit) leaves what the base provides alone', async () => {
  const base = new MemNode('base', 8 * G, G);
  for (let c = 0; c < 8; c++) base.clusters.set(c, filled(G, 1));
  const top = new MemNode('top', 8 * G, G, base);
  top.clusters.set(2, filled(G, 2));
  top.clusters.set(5, 'zero');
  const target = new MemNode('target', 8 * G, G, base);
  await copySegments(copyOpts(target, top, {
    segments: [{ source: top, base, sourceOffset: 0, targetOffset: 0, length: top.size() }],
    skipUnallocated: true,
    targetIsZero: false,
  }));
  assert.deepEqual(await content(target), await content(top));
  assert.deepEqual([...target.clusters.keys()].sort(), [2, 5]);
});

test('copy concatenates segments and follows the chain without a base', async () => {
  const base = new MemNode('base', 2 * G, G);
  base.clusters.set(0, filled(G, 4));
  const top = new MemNode('top', 3 * G, G, base);
  top.clusters.set(2, filled(G, 5));
  const other = new MemNode('other', 2 * G, G);
  other.clusters.set(1, filled(G, 6));
  const dst = new MemNode('dst', 5 * G, G);
  await copySegments(copyOpts(dst, top, {
    segments: [
      { source: top, base: null, sourceOffset: 0, targetOffset: 0, length: 3 * G },
      { source: other, base: null, sourceOffset: 0, targetOffset: 3 * G, length: 2 * G },
    ],
  }));
  assert.deepEqual(await content(dst), Buffer.concat([await content(top), await content(other)]));
});

test('compressed copy sends whole clusters to writeCompressed and skips zero clusters', async () => {
  const src = new MemNode('src', 40 * G, G);
  for (const c of [0, 1, 33, 39]) src.clusters.set(c, filled(G, c + 1));
  const dst = new MemNode('dst', 40 * G, G, null, true);
  await copySegments(copyOpts(dst, src, { compress: true }));
  assert.deepEqual(await content(dst), await content(src));
  assert.deepEqual(dst.log, [`compressed 0 ${2 * G}`, `compressed ${33 * G} ${G}`, `compressed ${39 * G} ${G}`]);
});

test('compression needs a target that supports it', async () => {
  const src = new MemNode('src', G, G);
  await assert.rejects(copySegments(copyOpts(new MemNode('dst', G, G), src, { compress: true })), /Compression not supported/);
});

test('in-order copy issues writes in offset order even with many in flight', async () => {
  const src = new MemNode('src', 8 * CHUNK, G);
  for (let c = 0; c < (8 * CHUNK) / G; c += 2) src.clusters.set(c, filled(G, 1));
  const dst = new MemNode('dst', 8 * CHUNK, G);
  await copySegments(copyOpts(dst, src, { inFlight: 16 }));
  const offsets = dst.log.map((l) => Number(l.split(' ')[1]));
  assert.deepEqual(offsets, [...offsets].sort((a, b) => a - b));
  assert.deepEqual(await content(dst), await content(src));
});

test('a read error fails the copy; --salvage turns unreadable sectors into zeroes', async () => {
  const src = new MemNode('src', 2 * G, G);
  src.clusters.set(0, filled(G, 1));
  src.clusters.set(1, filled(G, 2));
  const realRead = src.read.bind(src);
  src.read = async (offset, buf) => {
    if (offset <= G && offset + buf.length > G) throw new Error('Input/output error');
    return realRead(offset, buf);
  };
  await assert.rejects(copySegments(copyOpts(new MemNode('dst', 2 * G, G), src)), /Input\/output error/);
  const warnings: number[] = [];
  const dst = new MemNode('dst', 2 * G, G);
  await copySegments(copyOpts(dst, src, { salvage: (off) => warnings.push(off) }));
  assert.deepEqual(warnings, [G]);
  const got = await content(dst);
  assert.equal(got[0], 1);
  assert.equal(got[G], 0);
  assert.equal(got[G + 512], 2);
});

test('zeroRuns splits on unit boundaries of the target offset', () => {
  const zeroes = Buffer.alloc(16384);
  const data = Buffer.alloc(12288);
  data[5000] = 1;
  assert.deepEqual(zeroRuns(data, 0, 4096, zeroes), [
    { start: 0, end: 4096, zero: true },
    { start: 4096, end: 8192, zero: false },
    { start: 8192, end: 12288, zero: true },
  ]);
  // Unaligned start: the first unit ends at the next 4k boundary of the target.
  assert.deepEqual(zeroRuns(data.subarray(0, 6000), 2048, 4096, zeroes), [
    { start: 0, end: 2048, zero: true },
    { start: 2048, end: 6000, zero: false },
  ]);
});
