/**
 * Posted MMIO stores (vcpu/mailbox.ts post): a vCPU thread's stores to a
 * device that always accepts them (bytes and words, each with its size and
 * value) reach the main thread's handler in program order, before the hart's
 * next request, also when they overflow the ring (post then waits like a call).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { memoryPagesFor } from '../../src/emulator/riscv/layout.js';
import { MailboxOp, MailboxServer, STATUS_OK, type MailboxRequest } from '../../src/emulator/vcpu/mailbox.js';
import { startModuleWorker } from '../../src/emulator/vcpu/start-worker.js';

test('posted stores arrive in order, before the same hart\'s next request, past the ring\'s size', async () => {
  const pages = memoryPagesFor(1 << 20);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const seen: string[] = [];
  const handler = (r: MailboxRequest): number => {
    seen.push(`${r.hart}:${r.op === MailboxOp.MMIO_STORE ? 'S' : 'L'}:${r.arg.toString(16)}:${r.size}:${r.valueLo}`);
    r.resultLo = 0x60;
    return STATUS_OK;
  };
  const server = new MailboxServer(memory, 2, handler);
  server.reset();
  server.start();
  const count = 1000;
  const workers = [0, 1].map((hart) => startModuleWorker(new URL('./posted-worker.ts', import.meta.url), { memory, hart, count, load: true }));
  const results = (await Promise.all(workers.map((w) => once(w, 'message')))).map(([m]) => m as { statuses: number[]; load: number });
  server.stop();
  await Promise.all(workers.map((w) => w.terminate()));
  for (const [hart, r] of results.entries()) {
    assert.deepEqual(r.statuses, [STATUS_OK]);
    assert.equal(r.load, STATUS_OK);
    const expected = Array.from({ length: count }, (_, i) =>
      `${hart}:S:${(0x1000_0000 + (i % 8)).toString(16)}:${i % 3 === 0 ? `4:${0x1234_0000 + i}` : `1:${i & 0xff}`}`);
    expected.push(`${hart}:L:10000005:1:0`);
    assert.deepEqual(seen.filter((s) => s.startsWith(`${hart}:`)), expected);
  }
});

test('posted stores are drained without a request to prompt it (bursts wake the main thread once)', async () => {
  const pages = memoryPagesFor(1 << 20);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  let seen = 0;
  const server = new MailboxServer(memory, 1, () => {
    seen++;
    return STATUS_OK;
  });
  server.reset();
  server.start();
  const count = 5000;
  const worker = startModuleWorker(new URL('./posted-worker.ts', import.meta.url), { memory, hart: 0, count, load: false });
  await once(worker, 'message');
  // A lost wake-up leaves stores in the ring: wait (generously) for the last one to be handled.
  const deadline = Date.now() + 60_000;
  while (seen < count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  server.stop();
  await worker.terminate();
  assert.equal(seen, count);
});
