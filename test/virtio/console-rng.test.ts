/**
 * virtio-console and virtio-rng through virtio-mmio with a fake guest RAM:
 * transmitted bytes reach the character backend; host input waits in the
 * backend until the guest posts receive buffers, then fills them in order,
 * split across buffers, none dropped; the rng fills whole requests with
 * random bytes (64 KiB at most per request).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QueuedCharBackend } from '../../src/emulator/devices/char-backend.js';
import { VirtioConsole } from '../../src/emulator/virtio/console.js';
import { VirtioRng } from '../../src/emulator/virtio/rng.js';
import { TestDriver } from './fake-driver.js';

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString();

test('virtio-console: device ID 3, two queues; guest output goes to the backend', async () => {
  const out: string[] = [];
  const d = new TestDriver(new VirtioConsole(new QueuedCharBackend((bytes) => out.push(text(bytes)))));
  assert.equal(d.reg(0x008), 3);
  d.init();
  d.add(1, [{ read: Buffer.from('hello ') }, { read: Buffer.from('world') }]);
  d.kick(1);
  await d.settle();
  assert.deepEqual(out, ['hello world']);
  assert.deepEqual(d.takeUsed(1).map((u) => u.len), [0]);
});

test('virtio-console: input waits for receive buffers and is split across them, nothing dropped', async () => {
  const backend = new QueuedCharBackend(() => {});
  const d = new TestDriver(new VirtioConsole(backend));
  d.init();
  backend.push('abcdefghij');
  assert.equal(backend.pendingInput, 10, 'no buffers yet: the backend keeps the input');
  d.add(0, [{ write: 4 }]);
  d.kick(0);
  await d.settle();
  assert.deepEqual(d.takeUsed(0).map((u) => [u.len, text(u.data.subarray(0, u.len))]), [[4, 'abcd']]);
  d.add(0, [{ write: 3 }]);
  d.add(0, [{ write: 16 }]);
  d.kick(0);
  await d.settle();
  assert.deepEqual(d.takeUsed(0).map((u) => text(u.data.subarray(0, u.len))), ['efg', 'hij']);
  assert.equal(backend.pendingInput, 0);
});

test('virtio-rng: requests filled with random bytes, at most 64 KiB each', async () => {
  const d = new TestDriver(new VirtioRng());
  d.init();
  d.add(0, [{ write: 32 }]);
  d.add(0, [{ write: 70000 }]);
  d.kick(0);
  await d.settle();
  const [small, large] = d.takeUsed(0);
  assert.equal(small!.len, 32);
  assert.notDeepEqual(small!.data, new Uint8Array(32));
  assert.equal(large!.len, 65536);
});
