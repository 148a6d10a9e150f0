/**
 * The write queue of one open file: at most one write syscall on the descriptor
 * at a time. A host filesystem takes buffered writes to one file one at a time
 * anyway (ext4 holds the inode's lock across a write), so libuv pool threads
 * writing the same file at once only spin on that lock (measured 10-17% of a
 * 1 GiB convert's CPU); qemu-img, too, has one write in flight.
 *
 * States: idle (nothing in flight, queue empty) or busy (one pwritev in flight,
 * any number queued). A write that finds the queue idle goes out at once; writes
 * that arrive while one is in flight wait, and when it completes the oldest
 * queued write goes out together with the queued writes that continue it on
 * either side (one pwritev of at most BATCH_BYTES, IOV_MAX buffers): fewer
 * syscalls for small writes. Queued
 * writes are taken out of order only while no two of them overlap; otherwise
 * only the ones that follow the oldest in queue order and continue it, so
 * overlapping writes reach the file in the order they were issued, and a write
 * issued after another completed always lands after it.
 *
 * Each write's promise resolves once all its bytes are written (short writes
 * are continued). A failed syscall of a batch of several writes puts its
 * unfinished writes back at the front, each to go out alone, so every write gets
 * its own outcome. settled() waits for every write queued so far (flush and
 * close use it); settledOverlapping() for those touching a range (reads,
 * fallocate and truncate use it, so they see or replace what was issued before).
 */
import { writev as fsWritev } from 'node:fs';

/** Most buffers one pwritev takes (Linux's IOV_MAX). */
export const IOV_MAX = 1024;
/**
 * Most bytes a batch of several queued writes takes. Larger pwritevs cost the
 * kernel more per byte (1 GiB raw -> qcow2, whose data writes continue each
 * other: system CPU 0.37 s with no batches, 0.40 s with 1 MiB ones, 0.59 s with
 * 4 MiB ones), so batching is for small writes, where the syscall is the cost.
 */
const BATCH_BYTES = 256 * 1024;

interface QueuedWrite {
  offset: number;
  parts: readonly Uint8Array[];
  length: number;
  /** Set after a failed batch: this write goes out on its own. */
  alone: boolean;
  done: Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

const end = (w: QueuedWrite): number => w.offset + w.length;
const ignore = (): void => {};

export class FileWriteQueue {
  private queue: QueuedWrite[] = [];
  /** The batch whose pwritev is in flight, in file order; empty when idle. */
  private inFlight: QueuedWrite[] = [];

  constructor(private readonly fd: number) {}

  /** Writes `parts` laid end to end at `offset`; resolves when every byte is written. */
  write(offset: number, parts: readonly Uint8Array[]): Promise<void> {
    let length = 0;
    for (const p of parts) length += p.length;
    if (length === 0) return Promise.resolve();
    let resolve!: () => void;
    let reject!: (e: unknown) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.queue.push({ offset, parts, length, alone: false, done, resolve, reject });
    if (this.inFlight.length === 0) this.next();
    return done;
  }

  /** Resolves when every write issued so far has succeeded or failed. */
  settled(): Promise<void> {
    return this.waitFor([...this.inFlight, ...this.queue]);
  }

  /** Resolves when every write issued so far that touches [offset, offset+length) has settled. */
  settledOverlapping(offset: number, length: number): Promise<void> | null {
    if (this.inFlight.length === 0) return null;
    const touching = (w: QueuedWrite): boolean => w.offset < offset + length && offset < end(w);
    const writes = [...this.inFlight.filter(touching), ...this.queue.filter(touching)];
    return writes.length === 0 ? null : this.waitFor(writes);
  }

  private waitFor(writes: QueuedWrite[]): Promise<void> {
    if (writes.length === 0) return Promise.resolve();
    return Promise.all(writes.map((w) => w.done.catch(ignore))).then(ignore);
  }

  private next(): void {
    if (this.queue.length === 0) {
      this.inFlight = [];
      return;
    }
    this.inFlight = takeBatch(this.queue);
    this.queue = this.queue.filter((w) => !this.inFlight.includes(w));
    const batch = this.inFlight;
    const parts = batch.length === 1 ? batch[0]!.parts : batch.flatMap((w) => w.parts);
    this.send(batch, parts, batch[0]!.offset, 0);
  }

  /** One pwritev of `parts` at `position`; `done` bytes of the batch are already written. */
  private send(batch: QueuedWrite[], parts: readonly Uint8Array[], position: number, done: number): void {
    fsWritev(this.fd, parts as Uint8Array[], position, (err, n) => {
      if (err) return this.failed(batch, done, err);
      const rest = remainingParts(parts, n);
      if (rest.length > 0) return this.send(batch, rest, position + n, done + n);
      this.next();
      for (const w of batch) w.resolve();
    });
  }

  private failed(batch: QueuedWrite[], done: number, err: Error): void {
    const start = batch[0]!.offset;
    const finished = batch.filter((w) => end(w) - start <= done);
    const unfinished = batch.filter((w) => end(w) - start > done);
    if (unfinished.length === 1) unfinished[0]!.reject(err);
    else {
      for (const w of unfinished) w.alone = true;
      this.queue.unshift(...unfinished);
    }
    this.next();
    for (const w of finished) w.resolve();
  }
}

/** The size of a batch being gathered: take() adds a write if it stays within the limits. */
class BatchSize {
  private buffers: number;
  private bytes: number;

  constructor(first: QueuedWrite) {
    this.buffers = first.parts.length;
    this.bytes = first.length;
  }

  take(w: QueuedWrite): boolean {
    if (w.alone || this.buffers + w.parts.length > IOV_MAX || this.bytes + w.length > BATCH_BYTES) return false;
    this.buffers += w.parts.length;
    this.bytes += w.length;
    return true;
  }
}

/**
 * The writes to send next, in file order: the oldest queued write and those
 * continuing it (see the header). Does not change `queue`.
 */
function takeBatch(queue: readonly QueuedWrite[]): QueuedWrite[] {
  const oldest = queue[0]!;
  if (queue.length === 1 || oldest.alone) return [oldest];
  const byOffset = [...queue].sort((a, b) => a.offset - b.offset);
  if (anyOverlap(byOffset)) return continuingInOrder(queue);
  const size = new BatchSize(oldest);
  let first = byOffset.indexOf(oldest);
  let last = first;
  for (let w = byOffset[last + 1]; w && w.offset === end(byOffset[last]!) && size.take(w); w = byOffset[last + 1]) last++;
  for (let w = byOffset[first - 1]; w && end(w) === byOffset[first]!.offset && size.take(w); w = byOffset[first - 1]) first--;
  return byOffset.slice(first, last + 1);
}

/** The oldest write and the writes right after it in the queue that continue it. */
function continuingInOrder(queue: readonly QueuedWrite[]): QueuedWrite[] {
  const batch = [queue[0]!];
  const size = new BatchSize(queue[0]!);
  for (let i = 1; i < queue.length; i++) {
    const w = queue[i]!;
    if (w.offset !== end(batch[batch.length - 1]!) || !size.take(w)) break;
    batch.push(w);
  }
  return batch;
}

function anyOverlap(byOffset: readonly QueuedWrite[]): boolean {
  let reach = 0;
  for (const w of byOffset) {
    if (w.offset < reach) return true;
    reach = Math.max(reach, end(w));
  }
  return false;
}

/** What a vectored transfer of `parts` laid end to end left undone after `done` bytes (reads use it too). */
export function remainingParts(parts: readonly Uint8Array[], done: number): Uint8Array[] {
  const rest: Uint8Array[] = [];
  for (let at = 0, i = 0; i < parts.length; at += parts[i]!.length, i++) {
    const part = parts[i]!;
    if (at + part.length <= done) continue;
    rest.push(part.subarray(Math.max(0, done - at)));
  }
  return rest;
}
