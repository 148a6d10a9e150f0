/**
 * qcow2's table cache (formats/qcow2/table-cache.ts) over a fake file whose
 * writes can be held: a table evicted while its write-back is still in flight is
 * found again in the cache, so a lookup in that window never reads the file's
 * older copy; once the write-back lands, a lookup reads the file, which has it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ProtocolNode } from '../../src/block/protocols/protocol.js';
import { TableCache } from '../../src/block/formats/qcow2/table-cache.js';

const TABLE = 4096;

/** An in-memory file whose writeGrow waits while `hold` is set, until release(). */
class HeldFile {
  readonly filename = 'mem';
  readonly bytes = new Uint8Array(4 * TABLE);
  hold = false;
  reads = 0;
  private held: (() => void)[] = [];
  size(): number {
    return this.bytes.length;
  }
  async read(offset: number, buf: Uint8Array): Promise<void> {
    this.reads++;
    buf.set(this.bytes.subarray(offset, offset + buf.length));
  }
  async writeGrow(offset: number, buf: Uint8Array): Promise<void> {
    const copy = buf.slice();
    if (this.hold) await new Promise<void>((resolve) => this.held.push(resolve));
    this.bytes.set(copy, offset);
  }
  release(): void {
    this.hold = false;
    for (const resolve of this.held.splice(0)) resolve();
  }
}

test('a table whose eviction write-back is in flight is found in the cache, not read from the file', async () => {
  const file = new HeldFile();
  const cache = new TableCache(file as unknown as ProtocolNode, TABLE, 1, 'L2 table');
  const a = await cache.get(0);
  a.data[8] = 0x5a;
  cache.markDirty(a, 8, 9);
  file.hold = true;
  const evicting = cache.get(TABLE); // evicts table 0: its write-back waits
  await new Promise((resolve) => setImmediate(resolve));
  const readsBefore = file.reads;
  const again = await cache.get(0);
  assert.equal(again, a, 'the evicted table itself comes back');
  assert.equal(again.data[8], 0x5a);
  assert.equal(file.reads, readsBefore, 'no read of the file\'s older copy');
  file.release();
  await evicting;
  assert.equal(file.bytes[8], 0x5a, 'the write-back landed');
  cache.drop(0);
  assert.equal((await cache.get(0)).data[8], 0x5a, 'a later miss reads the written table');
});
