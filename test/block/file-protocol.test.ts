import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { stat, writeFile } from 'node:fs/promises';
import { FileNode } from '../../src/block/protocols/file.js';
import type { Preallocation } from '../../src/block/node.js';
import { mustRun, qemuImg, scratchDir, tsemu } from '../helpers/peers.js';

interface MapEntry {
  start: number;
  length: number;
  zero: boolean;
  data: boolean;
}

/** The file's extents as FileNode.blockStatus reports them, merged like qemu-img map merges them. */
async function tsemuMap(file: string): Promise<MapEntry[]> {
  const node = await FileNode.open(file, { readOnly: true });
  const out: MapEntry[] = [];
  try {
    for (let pos = 0; pos < node.size(); ) {
      const st = await node.blockStatus(pos, node.size() - pos);
      const last = out[out.length - 1];
      if (last && last.zero === st.zero && last.data === st.data) last.length += st.length;
      else out.push({ start: pos, length: st.length, zero: st.zero, data: st.data });
      pos += st.length;
    }
  } finally {
    await node.close();
  }
  return out;
}

async function qemuMap(file: string): Promise<MapEntry[]> {
  const r = await mustRun(qemuImg(['map', '--output=json', '-f', 'raw', file]), 'qemu-img map');
  return (JSON.parse(r.stdout) as MapEntry[]).map(({ start, length, zero, data }) => ({ start, length, zero, data }));
}

test('blockStatus of a sparse file equals qemu-img map (holes zero, data data)', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'sparse.img');
    const node = await FileNode.open(file, { create: true });
    await node.truncate(4 << 20);
    await node.write(1 << 20, new Uint8Array(65536).fill(0xab));
    await node.write(3 << 20, new Uint8Array(4096).fill(1));
    await node.close();
    const ours = await tsemuMap(file);
    assert.deepEqual(ours, await qemuMap(file));
    assert.deepEqual(ours[0], { start: 0, length: 4096, zero: false, data: true }, 'first block allocated like QEMU');
    assert.ok(ours.some((e) => e.zero && !e.data), 'holes are reported as zero');
  } finally {
    await cleanup();
  }
});

test('writeZeroes with mayUnmap punches a hole; without it the range reads zero and keeps the size', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'z.img');
    await writeFile(file, new Uint8Array(1 << 20).fill(0x5a));
    const node = await FileNode.open(file);
    const before = (await stat(file)).blocks;
    await node.writeZeroes(0, 512 << 10, { mayUnmap: true });
    assert.ok((await stat(file)).blocks < before, 'punched range frees blocks');
    const st = await node.blockStatus(0, 1 << 20);
    assert.deepEqual([st.length, st.zero, st.data], [512 << 10, true, false]);
    await node.writeZeroes(512 << 10, 4096);
    await node.discard(600 << 10, 64 << 10);
    const buf = new Uint8Array(1 << 20);
    await node.read(0, buf);
    const expect = new Uint8Array(1 << 20).fill(0x5a);
    expect.fill(0, 0, (512 << 10) + 4096);
    expect.fill(0, 600 << 10, 664 << 10);
    assert.deepEqual(buf, expect);
    assert.equal(node.size(), 1 << 20);
    assert.equal((await stat(file)).size, 1 << 20);
    await node.close();
    assert.deepEqual(await tsemuMap(file), await qemuMap(file));
  } finally {
    await cleanup();
  }
});

test('truncate with each preallocation mode maps like a file qemu-img creates the same way', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    for (const mode of ['off', 'falloc', 'full'] as Preallocation[]) {
      const ours = path.join(dir, `ours-${mode}.img`);
      const theirs = path.join(dir, `theirs-${mode}.img`);
      const node = await FileNode.open(ours, { create: true });
      await node.truncate(3 << 20, { preallocation: mode });
      await node.close();
      await mustRun(qemuImg(['create', '-q', '-f', 'raw', '-o', `preallocation=${mode}`, theirs, '3M']), 'qemu-img create');
      assert.deepEqual(await tsemuMap(ours), await qemuMap(theirs), `preallocation=${mode}`);
      const [a, b] = [await stat(ours), await stat(theirs)];
      assert.equal(a.size, b.size);
      assert.equal(a.blocks, b.blocks, `disk usage with preallocation=${mode}`);
    }
    const meta = await FileNode.open(path.join(dir, 'meta.img'), { create: true });
    await assert.rejects(meta.truncate(1 << 20, { preallocation: 'metadata' }), /^BlockRequestError: Unsupported preallocation mode: metadata$/);
    await meta.close();
  } finally {
    await cleanup();
  }
});

test('bad requests are clear errors', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'e.img');
    const node = await FileNode.open(file, { create: true });
    await node.truncate(1 << 20);
    await assert.rejects(node.truncate(4096), /cannot shrink/);
    await assert.rejects(node.truncate(4096, { shrink: true, preallocation: 'full' }), /preallocation for shrinking/);
    await assert.rejects(node.writeZeroes(1 << 20, 512), /past the end/);
    await assert.rejects(node.blockStatus(-1, 512), /invalid request/);
    await node.truncate(4096, { shrink: true });
    assert.equal(node.size(), 4096);
    await node.close();
    const ro = await FileNode.open(file, { readOnly: true });
    await assert.rejects(ro.writeZeroes(0, 512), /read-only/);
    await assert.rejects(ro.discard(0, 512), /read-only/);
    await ro.close();
    await assert.rejects(FileNode.open(path.join(dir, 'missing.img')), /Could not open .*No such file or directory/);
    await assert.rejects(FileNode.open(file, { forceShare: true }), /force-share=on can only be used with read-only images/);
  } finally {
    await cleanup();
  }
});

test('tsemu img map of a sparse raw file prints what qemu-img map prints', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'holes.raw');
    const node = await FileNode.open(file, { create: true });
    await node.truncate(8 << 20);
    await node.write(1 << 20, new Uint8Array(3).fill(0x61));
    await node.write(5 << 20, new Uint8Array(128 << 10).fill(0x62));
    await node.writeZeroes(5 << 20, 64 << 10, { mayUnmap: true });
    await node.close();
    for (const output of ['json', 'human']) {
      const ours = await mustRun(tsemu(['img', 'map', `--output=${output}`, '-f', 'raw', file]), 'tsemu img map');
      const theirs = await mustRun(qemuImg(['map', `--output=${output}`, '-f', 'raw', file]), 'qemu-img map');
      assert.equal(ours.stdout, theirs.stdout, `--output=${output}`);
    }
  } finally {
    await cleanup();
  }
});
