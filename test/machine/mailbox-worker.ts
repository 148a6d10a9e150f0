/** Test worker for mailbox.test.ts: a fake vCPU that stores then loads through its hart's mailbox slot. */
import { parentPort, workerData } from 'node:worker_threads';
import { MailboxClient, MailboxOp, STATUS_OK } from '../../src/emulator/vcpu/mailbox.js';

const { memory, hart, count } = workerData as { memory: WebAssembly.Memory; hart: number; count: number };
const client = new MailboxClient(memory, hart);
const started = performance.now();
let errors = 0;
for (let i = 0; i < count; i++) {
  const addr = 0x1000_0000 + hart * 0x1000 + (i % 64) * 8;
  if (client.call(MailboxOp.MMIO_STORE, addr, 8, i, -i) !== STATUS_OK) errors++;
  if (client.call(MailboxOp.MMIO_LOAD, addr, 8, 0, 0) !== STATUS_OK) errors++;
  if (client.resultLo !== i || client.resultHi !== -i) errors++;
}
const unmapped = client.call(MailboxOp.MMIO_LOAD, 0x5, 4, 0, 0);
parentPort!.postMessage({ errors, unmapped, microsPerCall: ((performance.now() - started) * 1000) / (2 * count) });
