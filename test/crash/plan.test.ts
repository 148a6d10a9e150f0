/**
 * The crash test's own oracle (plan.ts unexplainedByte) must catch lost
 * acknowledged writes and foreign bytes, and accept old-or-new data for writes
 * that were started but not acknowledged; otherwise a passing crash test would
 * prove nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type CrashConfig, opData, planOps, unexplainedByte } from './plan.js';

const CFG: CrashConfig = { name: 'oracle', createOptions: '', size: 1 << 20, clusterSize: 65536, compressedShare: 0.2, withBacking: false };
const SEED = 7;

function scenario() {
  const ops = planOps(CFG, SEED, 0, 40);
  const lastAck = ops.find((op, i) => op.flushAfter && i > 5)!.seq;
  const outcome = { lastAck, lastStarted: lastAck + 3, done: false };
  const before = new Uint8Array(CFG.size);
  const acked = before.slice();
  for (const op of ops) if (op.seq <= lastAck) acked.set(opData(op, SEED), op.offset);
  return { ops, outcome, before, acked };
}

test('all acknowledged writes present, nothing else: accepted', () => {
  const { ops, outcome, before, acked } = scenario();
  assert.equal(unexplainedByte(acked, before, ops, SEED, outcome), null);
});

test('unacknowledged writes fully or partly landed: accepted', () => {
  const { ops, outcome, before, acked } = scenario();
  const withAll = acked.slice();
  for (const op of ops) if (op.seq > outcome.lastAck && op.seq <= outcome.lastStarted) withAll.set(opData(op, SEED), op.offset);
  assert.equal(unexplainedByte(withAll, before, ops, SEED, outcome), null);
  const partly = acked.slice();
  const op = ops.find((o) => o.seq === outcome.lastStarted)!;
  partly.set(opData(op, SEED).subarray(0, 512), op.offset);
  assert.equal(unexplainedByte(partly, before, ops, SEED, outcome), null);
});

test('a lost acknowledged write is caught', () => {
  const { ops, outcome, before, acked } = scenario();
  const op = ops.find((o) => o.seq <= outcome.lastAck && o.kind !== 'zero')!;
  const lost = acked.slice();
  lost.fill(0, op.offset, op.offset + op.length);
  // Later acknowledged ops may cover part of the range; restore them so only `op` is lost.
  for (const later of ops) if (later.seq > op.seq && later.seq <= outcome.lastAck) lost.set(opData(later, SEED), later.offset);
  assert.match(unexplainedByte(lost, before, ops, SEED, outcome) ?? '', /expected/);
});

test('a byte that no write produced is caught', () => {
  const { ops, outcome, before, acked } = scenario();
  const bad = acked.slice();
  bad[CFG.size - 1] = bad[CFG.size - 1]! ^ 0x80;
  assert.match(unexplainedByte(bad, before, ops, SEED, outcome) ?? '', new RegExp(`byte ${CFG.size - 1} `));
});
