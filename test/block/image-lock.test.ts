import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { FileNode } from '../../src/block/protocols/file.js';
import { ImageLockError, PERM_ALL, PERM_WRITE } from '../../src/block/protocols/image-lock.js';
import { mustRun, qemuImg, requirePeer, scratchDir, type RunResult } from '../helpers/peers.js';
import { byteLocked, qemuIoNoStdin, startLockHolder, stopChild } from '../helpers/locks.js';

function mustSucceed(r: RunResult, what: string): void {
  assert.equal(r.code, 0, `${what} failed: ${r.stdout}${r.stderr}`);
}

/** Starts `qemu-io ARGS -c 'sleep 60000' FILE` and resolves once it holds lock byte `lastByte`. */
function holdWithQemuIo(args: string[], lastByte: number): Promise<ChildProcess> {
  requirePeer('qemu-io');
  const file = args[args.length - 1]!;
  return startLockHolder('qemu-io', [...args.slice(0, -1), '-c', 'sleep 60000', file], file, lastByte);
}

async function withImages(fn: (raw: string, qcow2: string) => Promise<void>): Promise<void> {
  const { dir, cleanup } = await scratchDir();
  try {
    const raw = path.join(dir, 'disk.raw');
    const qcow2 = path.join(dir, 'disk.qcow2');
    await mustRun(qemuImg(['create', '-q', '-f', 'raw', raw, '1M']), 'qemu-img create');
    await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', qcow2, '1M']), 'qemu-img create');
    await fn(raw, qcow2);
  } finally {
    await cleanup();
  }
}

test('a qcow2 image qemu-io has open for writing cannot be opened by tsemu, except with -U', async () => {
  await withImages(async (_raw, qcow2) => {
    const holder = await holdWithQemuIo(['-f', 'qcow2', qcow2], 201);
    try {
      await assert.rejects(FileNode.open(qcow2), (e: Error) => {
        assert.equal(e.message, `Failed to get "write" lock\nIs another process using the image [${qcow2}]?`);
        return true;
      });
      const ro = await FileNode.open(qcow2, { readOnly: true });
      assert.throws(() => ro.lockForFormat(true), /Failed to get shared "write" lock\nIs another process using the image/);
      await ro.close();
      const shared = await FileNode.open(qcow2, { readOnly: true, forceShare: true });
      shared.lockForFormat(true);
      await shared.close();
    } finally {
      await stopChild(holder);
    }
    const free = await FileNode.open(qcow2);
    free.lockForFormat(true);
    await free.close();
  });
});

test('a read-only qemu-io of a qcow2 image keeps tsemu from writing it', async () => {
  await withImages(async (_raw, qcow2) => {
    const holder = await holdWithQemuIo(['-r', '-f', 'qcow2', qcow2], 201);
    try {
      await assert.rejects(FileNode.open(qcow2), /Failed to get "write" lock/);
      const ro = await FileNode.open(qcow2, { readOnly: true });
      ro.lockForFormat(true);
      await ro.close();
    } finally {
      await stopChild(holder);
    }
  });
});

test('qemu-io and qemu-img cannot open a qcow2 image tsemu has open for writing', async () => {
  await withImages(async (_raw, qcow2) => {
    const node = await FileNode.open(qcow2);
    node.lockForFormat(true);
    try {
      const rw = qemuIoNoStdin(['-f', 'qcow2', '-c', 'read 0 512', qcow2]);
      assert.notEqual(rw.code, 0);
      assert.match(rw.stderr, /Failed to get "write" lock/);
      const ro = qemuIoNoStdin(['-r', '-f', 'qcow2', '-c', 'read 0 512', qcow2]);
      assert.notEqual(ro.code, 0);
      assert.match(ro.stderr, /Failed to get shared "write" lock/);
      const info = await qemuImg(['info', qcow2]);
      assert.notEqual(info.code, 0);
      assert.match(info.stderr, /Is another process using the image/);
      mustSucceed(qemuIoNoStdin(['-U', '-r', '-f', 'qcow2', '-c', 'read 0 512', qcow2]), 'qemu-io -U');
    } finally {
      await node.close();
    }
    mustSucceed(qemuIoNoStdin(['-f', 'qcow2', '-c', 'read 0 512', qcow2]), 'qemu-io after close');
  });
});

test('a read-only tsemu open of a qcow2 image keeps qemu-io from writing it', async () => {
  await withImages(async (_raw, qcow2) => {
    const node = await FileNode.open(qcow2, { readOnly: true });
    node.lockForFormat(true);
    try {
      const rw = qemuIoNoStdin(['-f', 'qcow2', '-c', 'read 0 512', qcow2]);
      assert.match(rw.stderr, /Failed to get "write" lock/);
      mustSucceed(qemuIoNoStdin(['-r', '-f', 'qcow2', '-c', 'read 0 512', qcow2]), 'qemu-io -r');
    } finally {
      await node.close();
    }
  });
});

test('raw images are shared for writing, as QEMU shares them', async () => {
  await withImages(async (raw) => {
    const holder = await holdWithQemuIo(['-f', 'raw', raw], 101);
    try {
      const node = await FileNode.open(raw);
      await node.write(0, new Uint8Array(512).fill(7));
      await node.close();
    } finally {
      await stopChild(holder);
    }
    const node = await FileNode.open(raw);
    try {
      mustSucceed(qemuIoNoStdin(['-f', 'raw', '-c', 'write 512 512', raw]), 'qemu-io write');
      assert.ok(byteLocked(raw, 100) && byteLocked(raw, 101), 'holds consistent read + write');
      assert.ok(!byteLocked(raw, 201), 'shares write');
    } finally {
      await node.close();
    }
  });
});

test('two tsemu opens in one process exclude each other like two processes', async () => {
  await withImages(async (_raw, qcow2) => {
    const a = await FileNode.open(qcow2);
    a.lockForFormat(true);
    try {
      await assert.rejects(FileNode.open(qcow2), /Failed to get "write" lock/);
    } finally {
      await a.close();
    }
    const creating = await FileNode.open(qcow2, { create: true });
    try {
      await assert.rejects(FileNode.open(qcow2, { create: true }), /Failed to get "resize" lock/);
      const r = qemuIoNoStdin(['-f', 'raw', '-c', 'truncate 4096', qcow2]);
      assert.match(r.stderr, /Failed to get "resize" lock/);
    } finally {
      await creating.close();
    }
  });
});

test('a refused permission change keeps the old permissions and leaves no stray lock bytes', async () => {
  await withImages(async (_raw, qcow2) => {
    const writer = await FileNode.open(qcow2);
    writer.lockForFormat(true);
    const reader = await FileNode.open(qcow2, { readOnly: true });
    const before = reader.permissions;
    assert.throws(
      () => reader.setPermissions({ perm: before.perm | PERM_WRITE, shared: PERM_ALL }),
      (e: Error) => e instanceof ImageLockError && /Failed to get "write" lock/.test(e.message),
    );
    assert.deepEqual(reader.permissions, before);
    await writer.close();
    assert.ok(!byteLocked(qcow2, 101), 'the refused write permission left no lock on byte 101');
    assert.ok(byteLocked(qcow2, 100), 'the reader still holds consistent read');
    await reader.close();
    assert.ok(!byteLocked(qcow2, 100), 'closing drops every lock');
  });
});

test('narrowing a permission releases its lock byte and widening again takes it back', async () => {
  await withImages(async (_raw, qcow2) => {
    const node = await FileNode.open(qcow2, { readOnly: true });
    try {
      const reader = node.permissions;
      const writing = { perm: reader.perm | PERM_WRITE, shared: reader.shared };
      node.setPermissions(writing);
      assert.ok(byteLocked(qcow2, 101), 'widening takes the write byte');
      node.setPermissions(reader);
      assert.ok(!byteLocked(qcow2, 101), 'narrowing releases the write byte');
      assert.ok(byteLocked(qcow2, 100), 'and keeps consistent read');
      node.setPermissions(writing);
      assert.ok(byteLocked(qcow2, 101), 'widening again takes the write byte back');
    } finally {
      await node.close();
    }
    assert.ok(!byteLocked(qcow2, 100) && !byteLocked(qcow2, 101), 'closing drops every lock');
  });
});
