/**
 * zeroRuns against a plain per-unit reference on seeded random layouts: zero and
 * data units, known-zero parts (whose bytes are garbage, as when a convert does
 * not read them), zero stretches longer than a unit that start off a unit
 * boundary, unaligned target offsets and a short last unit.
 */
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { test } from 'node:test';
import { alignUp, zeroRuns } from '../../src/block/ops/copy-engine.js';
import { makeRng } from '../helpers/pattern.js';

interface Part { start: number; end: number }

function reference(data: Buffer, t: number, unit: number, known: Part[]): { start: number; end: number; zero: boolean }[] {
  const runs: { start: number; end: number; zero: boolean }[] = [];
  for (let start = 0; start < data.length;) {
    const end = Math.min(data.length, alignUp(t + start + 1, unit) - t);
    const zero = known.some((p) => p.start <= start && p.end >= end) || data.subarray(start, end).every((b) => b === 0);
    const last = runs[runs.length - 1];
    if (last && last.zero === zero) last.end = end;
    else runs.push({ start, end, zero });
    start = end;
  }
  return runs;
}

test('zeroRuns matches a per-unit scan on random layouts', () => {
  const rng = makeRng(7);
  const unit = 512;
  const zeroes = Buffer.alloc(64 * unit);
  for (let round = 0; round < 300; round++) {
    const t = rng.int(0, 3) * 256;
    const data = Buffer.alloc(rng.int(1, 60) * unit - rng.int(0, 1) * 100);
    const known: Part[] = [];
    for (let at = 0; at < data.length;) {
      const len = rng.int(1, 6) * unit;
      const kind = rng.int(0, 4);
      const end = Math.min(data.length, at + len);
      if (kind === 0) data.fill(rng.int(1, 255), at, end);
      else if (kind === 4) {
        data.fill(rng.int(1, 255), at, end); // data around one zero stretch at any offset
        const from = rng.int(at, end - 1);
        data.fill(0, from, Math.min(end, from + rng.int(unit - 1, 3 * unit)));
      }
      else if (kind === 1) data[rng.int(at, end - 1)] = 1;
      else if (kind === 2) {
        data.fill(9, at, end); // garbage the scan must not look at
        known.push({ start: at, end });
      }
      at = end;
    }
    assert.deepEqual(zeroRuns(data, t, unit, zeroes, known), reference(data, t, unit, known), `round ${round}`);
  }
});
