import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { memoryPagesFor } from '../../src/emulator/riscv/layout.js';
import { MailboxOp, MailboxServer, STATUS_FAILED, STATUS_OK, STATUS_STOPPED, type MailboxRequest } from '../../src/emulator/vcpu/mailbox.js';
import { startModuleWorker } from '../../src/emulator/vcpu/start-worker.js';

const WORKER = new URL('./mailbox-worker.ts', import.meta.url);

function sharedMemory(): WebAssembly.Memory {
  const pages = memoryPagesFor(1 << 20);
  return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
}

test('mailbox: two vCPU threads do MMIO through the main thread concurrently; unmapped addresses fail', async () => {
  const memory = sharedMemory();
  const device = new Map<number, [number, number]>();
  const handler = (r: MailboxRequest): number => {
    if (r.arg < 0x1000_0000) return STATUS_FAILED;
    if (r.op === MailboxOp.MMIO_STORE) device.set(r.arg, [r.valueLo, r.valueHi]);
    else [r.resultLo, r.resultHi] = device.get(r.arg) ?? [0, 0];
    return STATUS_OK;
  };
  const server = new MailboxServer(memory, 2, handler);
  server.reset();
  server.start();
  const count = 2000;
  const workers = [0, 1].map((hart) => startModuleWorker(WORKER, { memory, hart, count }));
  const results = (await Promise.all(workers.map((w) => once(w, 'message')))).map(([m]) => m as {
    errors: number;
    unmapped: number;
    microsPerCall: number;
  });
  server.stop();
  await Promise.all(workers.map((w) => w.terminate()));
  for (const r of results) {
    assert.equal(r.errors, 0);
    assert.equal(r.unmapped, STATUS_FAILED);
  }
  console.log(`# mailbox round trip: ${results.map((r) => r.microsPerCall.toFixed(1)).join(' / ')} µs per call`);
});

test('mailbox: a stopped server answers waiting vCPU threads with STATUS_STOPPED', async () => {
  const memory = sharedMemory();
  const server = new MailboxServer(memory, 1, () => STATUS_OK);
  server.reset();
  // Not started: the worker's first request waits until stop() answers it.
  const worker = startModuleWorker(WORKER, { memory, hart: 0, count: 1 });
  await new Promise((r) => setTimeout(r, 300));
  server.stop();
  server.stop();
  server.stop();
  const [result] = (await once(worker, 'message')) as [{ errors: number; unmapped: number }];
  assert.equal(result.unmapped, STATUS_STOPPED);
  await worker.terminate();
});
