/**
 * Crash safety of tsemu's VHDX writes, by power cuts: the image file is wrapped
 * so that it stops taking changes after its k-th mutating call (write, grow,
 * zero, truncate, flush), as if the machine lost power there, for k spread over
 * a whole run of seeded writes and flushes (test/crash/plan.ts). Every other cut
 * also undoes all changes since the last flush (a lost page cache at its worst:
 * only the log can then restore BAT sectors written in place). After every cut
 * the image (with whatever log it holds) is replayed twice, once by
 * `qemu-img check -r all` and once by a writable open in tsemu, and:
 *   - qemu-img check finds the replayed images clean;
 *   - every write acknowledged by a flush before the cut is there, and every
 *     other byte is its old value or the value of a write started before the cut
 *     (plan.ts's oracle);
 *   - both replays give the same content.
 * Some cuts must land while the log holds entries, or the test proves nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { createImage } from '../../src/block/ops/create.js';
import { FileNode } from '../../src/block/protocols/file.js';
import type { ProtocolNode } from '../../src/block/protocols/protocol.js';
import { VhdxNode } from '../../src/block/formats/vhdx/node.js';
import { currentHeader, HEADER_OFFSETS, ZERO_GUID } from '../../src/block/formats/vhdx/layout.js';
import { closeImage, openImage } from '../../src/block/open.js';
import { makeRng } from '../helpers/pattern.js';
import { describeMismatch, readImageWithQemu, readImageWithTsemu } from '../helpers/images.js';
import { mustRun, qemuImg, scratchDir } from '../helpers/peers.js';
import { type CrashConfig, opData, planOps, type RunOutcome, unexplainedByte } from '../crash/plan.js';

const MiB = 1 << 20;
const OPS = 40;
const MUTATING = new Set<PropertyKey>(['write', 'writeGrow', 'writevGrow', 'writeZeroes', 'truncate', 'flush']);

class PowerCut extends Error {}

/**
 * `file`, cut off after `budget` mutating calls (null: never); `calls()` counts the
 * calls made. With `loseUnflushed`, the cut also undoes every change made since the
 * last flush (the worst a lost page cache can do); otherwise they all persist.
 */
function withPowerCut(file: FileNode, budget: number | null, loseUnflushed: boolean): { node: ProtocolNode; calls: () => number } {
  let calls = 0;
  let undo: { size: number; offset: number; old: Uint8Array }[] = [];
  const remember = async (offset: number, length: number) => {
    const size = file.size();
    const old = new Uint8Array(Math.max(0, Math.min(length, size - offset)));
    if (old.length > 0) await file.read(offset, old);
    undo.push({ size, offset, old });
  };
  const cut = async () => {
    for (const u of undo.reverse()) {
      await file.writeGrow(u.offset, u.old);
      if (file.size() > u.size) await file.truncate(u.size, { shrink: true });
    }
    undo = [];
  };
  const node = new Proxy(file, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      if (!MUTATING.has(prop)) return value.bind(target);
      return async (...args: unknown[]) => {
        if (budget !== null && calls >= budget) {
          if (loseUnflushed) await cut();
          throw new PowerCut('power cut');
        }
        calls++;
        if (prop === 'flush') undo = [];
        else if (loseUnflushed && prop === 'truncate') await remember(0, 0);
        else if (loseUnflushed) {
          const length = prop === 'writeZeroes' ? (args[1] as number)
            : prop === 'writevGrow' ? (args[1] as Uint8Array[]).reduce((n, p) => n + p.length, 0)
            : (args[1] as Uint8Array).length;
          await remember(args[0] as number, length);
        }
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { node, calls: () => calls };
}

/** Whether the image's header names a log (a replay may be due). */
async function hasLog(image: string): Promise<boolean> {
  const bytes = await readFile(image);
  return currentHeader(HEADER_OFFSETS.map((at) => bytes.subarray(at, at + 4096))).header.logGuid !== ZERO_GUID;
}

/** Runs the plan on `image` until the cut; returns what was acknowledged and started, and the calls made. */
async function runUntilCut(
  image: string,
  cfg: CrashConfig,
  seed: number,
  budget: number | null,
  loseUnflushed = false,
): Promise<{ outcome: RunOutcome; calls: number }> {
  const file = await FileNode.open(image, {});
  const { node, calls } = withPowerCut(file, budget, loseUnflushed);
  const outcome: RunOutcome = { lastAck: -1, lastStarted: -1, done: false };
  try {
    const img = await VhdxNode.open(node, { readOnly: false });
    for (const op of planOps(cfg, seed, 0, OPS)) {
      outcome.lastStarted = op.seq;
      if (op.kind === 'zero') await img.writeZeroes(op.offset, op.length);
      else await img.write(op.offset, opData(op, seed));
      if (op.flushAfter) {
        await img.flush();
        outcome.lastAck = op.seq;
      }
    }
    await img.close();
    outcome.done = true;
  } catch (e) {
    if (!(e instanceof PowerCut)) throw e;
    await file.close();
  }
  return { outcome, calls: calls() };
}

const CONFIGS: { cfg: CrashConfig; options: string[]; cuts: number }[] = [
  { cfg: { name: '1 MiB blocks', createOptions: '', size: 6 * MiB, clusterSize: MiB, compressedShare: 0, withBacking: false }, options: ['block_size=1M'], cuts: 14 },
  { cfg: { name: 'fixed, 1 MiB blocks', createOptions: '', size: 4 * MiB, clusterSize: MiB, compressedShare: 0, withBacking: false }, options: ['subformat=fixed,block_size=1M'], cuts: 6 },
];

for (const [index, { cfg, options, cuts }] of CONFIGS.entries()) {
  test(`vhdx power cuts: ${cfg.name}`, async () => {
    const { dir, cleanup } = await scratchDir();
    try {
      const base = path.join(dir, 'base.vhdx');
      await createImage({ filename: base, format: 'vhdx', size: String(cfg.size), options });
      const before = new Uint8Array(cfg.size);
      const seed = makeRng(0x5eed + index).int(1, 0x7fffffff);
      const full = path.join(dir, 'full.vhdx');
      await copyFile(base, full);
      const total = (await runUntilCut(full, cfg, seed, null)).calls;
      let withLog = 0;
      for (let i = 0; i < cuts; i++) {
        const budget = Math.round((i * total) / cuts);
        const loseUnflushed = i % 2 === 0;
        const when = `${cfg.name}, cut after ${budget} of ${total} calls${loseUnflushed ? ', unflushed changes lost' : ''}`;
        const image = path.join(dir, `cut${i}.vhdx`);
        const copy = path.join(dir, `cut${i}-qemu.vhdx`);
        await copyFile(base, image);
        const { outcome } = await runUntilCut(image, cfg, seed, budget, loseUnflushed);
        await copyFile(image, copy);
        if (await hasLog(image)) withLog++;

        await mustRun(qemuImg(['check', '-r', 'all', copy]), `${when}: qemu-img check -r all`);
        const viaQemu = await readImageWithQemu(copy, dir, 'vhdx');
        const problem = unexplainedByte(viaQemu, before, planOps(cfg, seed, 0, OPS), seed, outcome);
        assert.equal(problem, null, `${when}: ${problem}`);

        await closeImage(await openImage(image, { format: 'vhdx' }));
        await mustRun(qemuImg(['check', image]), `${when}: qemu-img check after tsemu's replay`);
        const viaTsemu = await readImageWithTsemu(image, { format: 'vhdx' });
        assert.equal(describeMismatch(`${when}: tsemu's and qemu-img's replays`, viaTsemu, viaQemu), null);
      }
      assert.ok(withLog > 0, 'some cuts leave a log to replay');
    } finally {
      await cleanup();
    }
  });
}
