/** Worker side of the CLINT test: reads mtime and a deadline from the shared memory and posts them back. */
import { parentPort, workerData } from 'node:worker_threads';
import { Clint } from '../../src/emulator/devices/aclint.js';

const { memory } = workerData as { memory: WebAssembly.Memory };
const noop = () => {};
const clint = new Clint({ memory, harts: 2, sink: { raiseInterrupt: noop, lowerInterrupt: noop, wake: noop } });
parentPort!.postMessage({ mtime: clint.readMtime(), deadline: clint.timerDeadline(1), viaMmio: clint.read(0x4008, 4) });
