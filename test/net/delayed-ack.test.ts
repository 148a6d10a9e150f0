/**
 * The delayed-ACK policy on its own: every second full segment (the segment size
 * learnt from what arrives), a burst of one turn acknowledged once and before what the
 * burst queued after it, a lone small segment after ACK_DELAY_MS, and nothing due once
 * an ACK left or the connection closed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ACK_DELAY_MS, DelayedAck } from '../../src/net/user/delayed-ack.js';

function policy(): { acks: DelayedAck; sentAt: number[] } {
  const sentAt: number[] = [];
  const acks: DelayedAck = new DelayedAck(1460, () => {
    sentAt.push(performance.now());
    acks.sent();
  });
  return { acks, sentAt };
}

test('full segments (1448 bytes: the guest uses timestamps) are acknowledged every second one, a burst of one turn once', async () => {
  const { acks, sentAt } = policy();
  acks.received(1448);
  acks.received(1448);
  acks.received(1448);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(sentAt.length, 1);
  assert.equal(acks.pending, false);
  await sleep(3 * ACK_DELAY_MS);
  assert.equal(sentAt.length, 1, 'the timer found nothing pending');
  acks.stop();
});

test('the ACK of a burst leaves before work the burst queued after it (a virtio-net card\'s interrupt decision)', async () => {
  const { acks, sentAt } = policy();
  acks.received(1460);
  acks.received(1460);
  const seen = await new Promise<number>((resolve) => queueMicrotask(() => resolve(sentAt.length)));
  assert.equal(seen, 1, 'the ACK was sent before a microtask queued after the burst ran');
  acks.stop();
});

test('a lone small segment is acknowledged after the delay, not before', async () => {
  const { acks, sentAt } = policy();
  const start = performance.now();
  acks.received(100);
  assert.equal(acks.pending, true);
  while (sentAt.length === 0) await sleep(1);
  assert.ok(sentAt[0]! - start >= ACK_DELAY_MS - 1, `ACK after ${sentAt[0]! - start} ms`);
  acks.stop();
});

test('an ACK that left (on data) or a closed connection leaves nothing to acknowledge', async () => {
  const { acks, sentAt } = policy();
  acks.received(100);
  acks.sent();
  await sleep(3 * ACK_DELAY_MS);
  assert.equal(sentAt.length, 0);
  acks.received(100);
  acks.stop();
  await sleep(3 * ACK_DELAY_MS);
  assert.equal(sentAt.length, 0);
});
