/**
 * Test worker for posted.test.ts: a fake vCPU that posts stores (more than the ring holds; every
 * third one a 4-byte store, like a virtio queue notification, the others bytes), then
 * loads, unless `load` is false (then the main thread must drain the ring without a request to prompt it).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { MailboxClient, MailboxOp, STATUS_OK } from '../../src/emulator/vcpu/mailbox.js';

const { memory, hart, count, load: loads } = workerData as { memory: WebAssembly.Memory; hart: number; count: number; load: boolean };
const client = new MailboxClient(memory, hart);
const statuses = new Set<number>();
for (let i = 0; i < count; i++) statuses.add(client.post(0x1000_0000 + (i % 8), i % 3 === 0 ? 4 : 1, i % 3 === 0 ? 0x1234_0000 + i : i & 0xff));
const load = loads ? client.call(MailboxOp.MMIO_LOAD, 0x1000_0005, 1, 0, 0) : STATUS_OK;
parentPort!.postMessage({ statuses: [...statuses], load });
