/**
 * A protocol that cannot tell how much of its file is allocated (allocatedSize()
 * -1, as NBD and HTTP answer) is an unknown, never a number to add up: a qcow2
 * image with metadata preallocation on such a protocol is not taken for
 * preallocated (QEMU asks the file about data clusters only when it knows), and
 * a vmdk whose file cannot tell has an unknown size on disk.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { FileNode } from '../../src/block/protocols/file.js';
import type { ProtocolNode } from '../../src/block/protocols/protocol.js';
import { getFormat } from '../../src/block/formats/index.js';
import { mustRun, qemuImg, scratchDir } from '../helpers/peers.js';

/** `file` with an allocated size it cannot tell. */
function unknownAllocation(file: ProtocolNode): ProtocolNode {
  return Object.assign(Object.create(file) as ProtocolNode, { allocatedSize: async () => -1 });
}

async function firstStatus(name: string, format: string, unknown: boolean) {
  const file = await FileNode.open(name, { readOnly: true });
  const image = await getFormat(format).open(unknown ? unknownAllocation(file) : file, { readOnly: true });
  try {
    return { status: await image.blockStatus(0, 65536), allocated: await image.allocatedSize() };
  } finally {
    await image.close();
  }
}

test('qcow2 with preallocation=metadata: data clusters read as zero from file holes only when the allocation is known', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const name = path.join(dir, 'meta.qcow2');
    await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', '-o', 'preallocation=metadata', name, '1M']), 'qemu-img create');
    const known = await firstStatus(name, 'qcow2', false);
    assert.equal(known.status.zero, true, 'a hole in a preallocated image reads as zero');
    const unknown = await firstStatus(name, 'qcow2', true);
    assert.equal(unknown.status.zero, false, 'unknown allocation: not preallocated, data is data');
    assert.equal(unknown.status.allocated, true);
  } finally {
    await cleanup();
  }
});

test('vmdk: a descriptor file that cannot tell its allocation makes the whole size unknown', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const name = path.join(dir, 'd.vmdk');
    await mustRun(qemuImg(['create', '-q', '-f', 'vmdk', '-o', 'subformat=twoGbMaxExtentSparse', name, '1M']), 'qemu-img create');
    assert.ok((await firstStatus(name, 'vmdk', false)).allocated > 0);
    assert.equal((await firstStatus(name, 'vmdk', true)).allocated, -1);
  } finally {
    await cleanup();
  }
});
