/**
 * Crash safety of tsemu's qcow2 writes. For each configuration a writer child
 * (writer.ts) writes seeded random data through the block layer and is
 * SIGKILLed at a random point of its progress (chosen by a seeded count of its
 * output lines, never by wall-clock assertions). After every kill:
 *   - `qemu-img check` finds no corruption (exit 0, or 3 = leaks only); with
 *     lazy_refcounts a killed image may instead carry the dirty bit, which
 *     `qemu-img check` reports as errors until repaired, as in QEMU;
 *   - the content, read through tsemu and through qemu-img convert, keeps every
 *     acknowledged (flushed) write, and each byte written after the last ACK is
 *     either its old value or the value of one of the unacknowledged writes;
 *   - the next run opens the same image again and writes on.
 * A last uninterrupted run must close the image cleanly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeRng } from '../helpers/pattern.js';
import { describeMismatch, readImageWithQemu, readImageWithTsemu } from '../helpers/images.js';
import { ROOT, mustRun, qemuImg, qemuIo, scratchDir } from '../helpers/peers.js';
import { HEADER, getU64 } from '../helpers/qcow2-layout.js';
import { type CrashConfig, type RunOutcome, planOps, unexplainedByte } from './plan.js';

const WRITER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'writer.ts');
const KILLS_PER_CONFIG = 4;
const OPS_PER_RUN = 400;
const MiB = 1 << 20;

const CONFIGS: CrashConfig[] = [
  { name: 'v3 64k clusters', createOptions: 'compat=1.1,cluster_size=64k', size: 16 * MiB, clusterSize: 65536, compressedShare: 0, withBacking: false },
  { name: 'compat=0.10', createOptions: 'compat=0.10', size: 16 * MiB, clusterSize: 65536, compressedShare: 0, withBacking: false },
  { name: 'lazy_refcounts', createOptions: 'lazy_refcounts=on', size: 16 * MiB, clusterSize: 65536, compressedShare: 0, withBacking: false },
  { name: 'compressed zlib', createOptions: 'cluster_size=4k', size: 16 * MiB, clusterSize: 4096, compressedShare: 0.3, withBacking: false },
  { name: 'compressed zstd', createOptions: 'cluster_size=4k,compression_type=zstd', size: 16 * MiB, clusterSize: 4096, compressedShare: 0.3, withBacking: false },
  { name: 'extended_l2', createOptions: 'extended_l2=on,cluster_size=64k', size: 16 * MiB, clusterSize: 65536, compressedShare: 0, withBacking: false },
  { name: 'refcount_bits=1', createOptions: 'refcount_bits=1', size: 16 * MiB, clusterSize: 65536, compressedShare: 0, withBacking: false },
  { name: 'refcount_bits=64', createOptions: 'refcount_bits=64', size: 16 * MiB, clusterSize: 65536, compressedShare: 0, withBacking: false },
  { name: '512-byte clusters', createOptions: 'cluster_size=512', size: 4 * MiB, clusterSize: 512, compressedShare: 0, withBacking: false },
  { name: 'overlay on a backing file', createOptions: 'cluster_size=64k', size: 16 * MiB, clusterSize: 65536, compressedShare: 0, withBacking: true },
];

/** Runs the writer; kills it when its `killAtLine`-th progress line arrives (null: let it finish). */
function runWriter(image: string, cfg: CrashConfig, runSeed: number, firstSeq: number, killAtLine: number | null): Promise<RunOutcome> {
  const args = JSON.stringify({ image, cfg, runSeed, firstSeq, count: OPS_PER_RUN });
  // From the repository root, where `--import tsx` resolves; one process, so SIGKILL hits the writer itself.
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  let stderr = '';
  let progressLines = 0;
  let killed = false;
  child.stdout.on('data', (d: Buffer) => {
    text += d.toString();
    progressLines = text.split('\n').filter((l) => l.startsWith('W ') || l.startsWith('ACK ')).length;
    if (killAtLine !== null && !killed && progressLines >= killAtLine) {
      killed = true;
      child.kill('SIGKILL');
    }
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0 && signal !== 'SIGKILL') {
        reject(new Error(`writer failed (exit ${code}):\n${stderr}`));
        return;
      }
      const lines = text.split('\n');
      const nums = (prefix: string): number[] =>
        lines.filter((l) => l.startsWith(prefix)).map((l) => Number(l.slice(prefix.length)));
      resolve({
        lastAck: Math.max(firstSeq - 1, ...nums('ACK ')),
        lastStarted: Math.max(firstSeq - 1, ...nums('W ')),
        done: lines.includes('DONE'),
      });
    });
  });
}

async function isDirty(image: string): Promise<boolean> {
  const header = new Uint8Array(await readFile(image)).subarray(0, 80);
  return (getU64(header, HEADER.incompatibleFeatures) & 1n) !== 0n;
}

async function qemuCheckAfterCrash(image: string, cfg: CrashConfig, when: string): Promise<void> {
  const r = await qemuImg(['check', '-U', image]);
  if (r.code === 0 || r.code === 3) return;
  const lazy = cfg.createOptions.includes('lazy_refcounts=on');
  if (lazy && r.code === 2 && (await isDirty(image))) return;
  assert.fail(`${when}: qemu-img check exited ${r.code} (0 or 3 expected)\n${r.stdout}${r.stderr}`);
}

for (const [index, cfg] of CONFIGS.entries()) {
  test(`crash safety: ${cfg.name}`, async () => {
    const { dir, cleanup } = await scratchDir();
    try {
      const image = path.join(dir, 'disk.qcow2');
      const rng = makeRng(0xc0ffee + index);
      if (cfg.withBacking) {
        const base = path.join(dir, 'base.qcow2');
        await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', base, String(cfg.size)]), 'qemu-img create base');
        await mustRun(qemuIo(['-c', `write -P 0x5a 0 ${cfg.size / 2}`, '-c', `write -P 0xa5 ${cfg.size / 2 + 4096} 1M`, base]), 'qemu-io fill base');
        await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', '-o', cfg.createOptions, '-b', 'base.qcow2', '-F', 'qcow2', image]), 'qemu-img create overlay');
      } else {
        await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', '-o', cfg.createOptions, image, String(cfg.size)]), 'qemu-img create');
      }
      let content = await readImageWithQemu(image, dir);
      let nextSeq = 0;

      for (let kill = 0; kill <= KILLS_PER_CONFIG; kill++) {
        const last = kill === KILLS_PER_CONFIG;
        const runSeed = rng.int(1, 0x7fffffff);
        const when = `${cfg.name}, run ${kill}${last ? ' (uninterrupted)' : ''}`;
        const outcome = await runWriter(image, cfg, runSeed, nextSeq, last ? null : rng.int(1, 60));
        assert.equal(outcome.done, last, last ? `${when}: the writer did not finish` : `${when}: the writer finished before the kill`);
        const ops = planOps(cfg, runSeed, nextSeq, OPS_PER_RUN);

        await qemuCheckAfterCrash(image, cfg, when);
        if (last) {
          const r = await qemuImg(['check', image]);
          assert.ok(r.code === 0 || r.code === 3, `${when}: qemu-img check after a clean close exited ${r.code}\n${r.stdout}${r.stderr}`);
          assert.equal(await isDirty(image), false, `${when}: the dirty bit is still set after a clean close`);
        }
        const viaQemu = await readImageWithQemu(image, dir);
        const problem = unexplainedByte(viaQemu, content, ops, runSeed, outcome);
        assert.equal(problem, null, `${when}, read by qemu-img: ${problem}`);
        const viaTsemu = await readImageWithTsemu(image);
        const mismatch = describeMismatch(`${when}: tsemu and qemu-img read different content`, viaTsemu, viaQemu);
        assert.equal(mismatch, null, mismatch ?? '');

        content = viaQemu;
        nextSeq = outcome.lastStarted + 1;
      }
    } finally {
      await cleanup();
    }
  });
}
