/**
 * Crash-test writer child: opens a qcow2 image through tsemu's block layer and
 * performs the planned operations one at a time, printing "W <seq>" before each
 * operation starts and "ACK <seq>" after a flush() returns (an ACK covers every
 * operation up to and including <seq>). Lines go out with synchronous writes so
 * that everything printed is in the pipe when the parent SIGKILLs the process.
 * When it gets through the whole plan it closes the image and prints "DONE".
 *
 * Usage: node --import tsx test/crash/writer.ts '<json {image, cfg, runSeed, firstSeq, count}>'
 */
import { writeSync } from 'node:fs';
import { closeImage, openImage } from '../../src/block/open.js';
import { type CrashConfig, opData, planOps } from './plan.js';

interface WriterArgs {
  image: string;
  cfg: CrashConfig;
  runSeed: number;
  firstSeq: number;
  count: number;
}

const pause = new Int32Array(new SharedArrayBuffer(4));

/** Writes a line to stdout, waiting while the pipe is full (stdout may be non-blocking). */
function say(line: string): void {
  const bytes = Buffer.from(`${line}\n`);
  for (let at = 0; at < bytes.length;) {
    try {
      at += writeSync(1, bytes, at);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}

async function main(): Promise<void> {
  const a = JSON.parse(process.argv[2] ?? '') as WriterArgs;
  const img = await openImage(a.image);
  say('OPEN');
  for (const op of planOps(a.cfg, a.runSeed, a.firstSeq, a.count)) {
    say(`W ${op.seq}`);
    if (op.kind === 'zero') {
      await img.writeZeroes(op.offset, op.length);
    } else if (op.kind === 'compressed') {
      if (!img.writeCompressed) throw new Error(`${img.driver} has no compressed writes`);
      await img.writeCompressed(op.offset, opData(op, a.runSeed));
    } else {
      await img.write(op.offset, opData(op, a.runSeed));
    }
    if (op.flushAfter) {
      await img.flush();
      say(`ACK ${op.seq}`);
    }
  }
  await closeImage(img);
  say('DONE');
}

main().catch((e: Error) => {
  process.stderr.write(`writer: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
