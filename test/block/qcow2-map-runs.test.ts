/**
 * Qcow2Node.mapExtent over many clusters (where runs of standard L2 entries are
 * followed by comparing their words) against the same mapping taken one cluster
 * at a time and merged: data runs with and without contiguous hosts, zero
 * clusters with and without a host, differing COPIED flags (an internal
 * snapshot), unallocated clusters, and host offsets that cross 4 GiB (the carry
 * into an entry's high word).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import path from 'node:path';
import type { Extent, Qcow2Node } from '../../src/block/formats/qcow2/node.js';
import { closeImage, openImage } from '../../src/block/open.js';
import { mustRun, qemuImg, qemuIo, scratchDir } from '../helpers/peers.js';
import { makeRng } from '../helpers/pattern.js';

const CS = 65536;

/** The mapping of [offset, offset+length) merged from one-cluster lookups (the reference). */
async function mapByCluster(node: Qcow2Node, offset: number, length: number): Promise<Extent> {
  let first: Extent | null = null;
  let nextHost: number | null = null;
  for (let pos = offset; pos < offset + length;) {
    const n = Math.min(offset + length - pos, CS - (pos % CS));
    const e = await node.mapExtent(pos, n);
    if (first === null) first = { ...e, length: 0 };
    else if (e.kind !== first.kind || e.hostOffset !== nextHost || e.compressed !== null) break;
    first.length += e.length;
    nextHost = e.hostOffset === null ? null : e.hostOffset + e.length;
    pos += e.length;
    if (e.length < n) break;
  }
  return first!;
}

async function compareMappings(file: string, seed: number, rounds: number): Promise<void> {
  const node = (await openImage(file, { readOnly: true })) as unknown as Qcow2Node;
  try {
    const rng = makeRng(seed);
    const size = node.size();
    for (let i = 0; i < rounds; i++) {
      const offset = rng.int(0, Math.floor(size / 512) - 1) * 512;
      const length = Math.min(size - offset, rng.int(1, 96) * CS - rng.int(0, 1) * 512);
      const fast = await node.mapExtent(offset, length);
      const slow = await mapByCluster(node, offset, fast.length);
      assert.deepEqual(fast, slow, `offset ${offset} length ${length}`);
    }
  } finally {
    await closeImage(node as never);
  }
}

test('mapExtent runs match cluster-by-cluster mapping (data, zero, unallocated, snapshot-shared clusters)', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const file = path.join(dir, 'mixed.qcow2');
    await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', file, '64M']), 'qemu-img create');
    const rng = makeRng(3);
    const commands: string[] = [];
    for (let at = 0; at < 64 * 2 ** 20;) {
      const len = rng.int(1, 12) * CS;
      const kind = rng.int(0, 3);
      if (kind === 0) commands.push(`write -P ${rng.int(1, 255)} ${at} ${len}`);
      else if (kind === 1) commands.push(`write -z ${at} ${len}`);
      else if (kind === 2) commands.push(`write -P 7 ${at} ${len}`, `write -z -u ${at} ${len}`);
      at += len;
    }
    await mustRun(qemuIo(['-f', 'qcow2', ...commands.flatMap((c) => ['-c', c]), file]), 'qemu-io writes');
    // A snapshot clears COPIED on every cluster; rewriting some scatters new hosts among shared ones.
    await mustRun(qemuImg(['snapshot', '-c', 'snap', file]), 'qemu-img snapshot');
    const rewrites: string[] = [];
    for (let i = 0; i < 40; i++) rewrites.push('-c', `write -P 9 ${rng.int(0, 1023) * CS} ${rng.int(1, 3) * CS}`);
    await mustRun(qemuIo(['-f', 'qcow2', ...rewrites, file]), 'qemu-io rewrites');
    await compareMappings(file, 11, 400);
  } finally {
    await cleanup();
  }
});

test('mapExtent runs of contiguous hosts across 4 GiB of the file', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    // Metadata preallocation maps every cluster to consecutive hosts; the file stays sparse.
    const file = path.join(dir, 'big.qcow2');
    await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', '-o', 'preallocation=metadata', file, '5G']), 'qemu-img create');
    const node = (await openImage(file, { readOnly: true })) as unknown as Qcow2Node;
    try {
      // The L2 table whose data clusters straddle host offset 4 GiB maps as one run.
      const reach = CS * (CS / 8);
      let crossing = -1;
      for (let g = 0; g < node.size() && crossing < 0; g += reach) {
        const e = await node.mapExtent(g, reach);
        if (e.hostOffset !== null && e.hostOffset < 2 ** 32 && e.hostOffset + e.length > 2 ** 32) crossing = g;
      }
      assert.ok(crossing >= 0, 'no run crosses host offset 4 GiB');
      const run = await node.mapExtent(crossing, reach);
      assert.deepEqual(run, await mapByCluster(node, crossing, reach));
    } finally {
      await closeImage(node as never);
    }
    await compareMappings(file, 5, 100);
  } finally {
    await cleanup();
  }
});
