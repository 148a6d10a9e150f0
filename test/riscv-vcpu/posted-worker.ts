/** Test worker for posted.test.ts: a fake vCPU that posts byte stores (more than the ring holds), then loads. */
import { parentPort, workerData } from 'node:worker_threads';
import { MailboxClient, MailboxOp } from '../../src/emulator/vcpu/mailbox.js';

const { memory, hart, count } = workerData as { memory: WebAssembly.Memory; hart: number; count: number };
const client = new MailboxClient(memory, hart);
const statuses = new Set<number>();
for (let i = 0; i < count; i++) statuses.add(client.post(0x1000_0000 + (i % 8), i & 0xff));
const load = client.call(MailboxOp.MMIO_LOAD, 0x1000_0005, 1, 0, 0);
parentPort!.postMessage({ statuses: [...statuses], load });
