/**
 * Hostile qcow2 images: each case of cases.ts damages a valid qemu-img image,
 * then `tsemu img info`, `img check`, `img convert -O raw` and
 * `io -c 'read 0 64k'` run on it next to their qemu-img/qemu-io counterparts.
 * Rules, for every command:
 *   - tsemu never crashes (no signal, no stack trace) and never hangs (a guard
 *     of minutes kills it), and leaves every input file byte-for-byte intact;
 *   - when tsemu fails, its output names the problem; info and convert fail
 *     with one "tsemu: …" line on stderr (check and io report problems in
 *     their own output formats, like qemu-img check and qemu-io);
 *   - `check` ends with qemu-img's exit code (its code is its interface:
 *     2 = corruption found, 1 = could not check);
 *   - where qemu-img/qemu-io fail, tsemu fails too; where QEMU tolerates the
 *     damage, tsemu may behave as QEMU does or refuse with a clear error;
 *   - where qemu-img 7.2 never finishes (check/convert of a backing loop), it
 *     is not run, and tsemu's commands that read guest data must fail;
 *   - an error that does not name the problem passes only when it is exactly
 *     what QEMU prints for the same command (qemu-io's bare "Input/output error");
 *   - `io` opens the image read-write, as qemu-io does, so it may mark that
 *     image corrupt (QEMU does); every other file stays intact.
 * Two refcount-overflow cases run `img snapshot -c` where a refcount is at its
 * maximum: it must fail cleanly and leave a consistent image.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { HOSTILE_CASES, type HostileCase, makeBaseImages, patchedCopy } from './cases.js';
import { type BoundedResult, runBounded } from '../helpers/bounded.js';
import { ROOT, mustRun, qemuImg, qemuIo, requirePeer, scratchDir } from '../helpers/peers.js';
import { sha256File } from '../helpers/pattern.js';
import { OFFSET_MASK, getU64, l2EntryAt, readLayout } from '../helpers/qcow2-layout.js';

const TSEMU_BIN = path.join(ROOT, 'bin/tsemu.js');

interface CommandPair {
  name: 'info' | 'check' | 'convert' | 'io';
  tsemu: (img: string, out: string) => string[];
  peer: (img: string, out: string) => [string, string[]];
  /** The exit code must equal the peer's (when the peer did not crash). */
  sameExitCode: boolean;
  /** Failures are one "tsemu: …" error line on stderr. */
  errorPrefix: boolean;
  /** Reads guest data (so it must fail when the data cannot be found). */
  readsData: boolean;
  /** Opens the image read-write (so the image itself may change, e.g. a corrupt mark). */
  writesImage: boolean;
}

const COMMANDS: CommandPair[] = [
  { name: 'info', tsemu: (i) => ['img', 'info', i], peer: (i) => ['qemu-img', ['info', i]], sameExitCode: false, errorPrefix: true, readsData: false, writesImage: false },
  { name: 'check', tsemu: (i) => ['img', 'check', i], peer: (i) => ['qemu-img', ['check', i]], sameExitCode: true, errorPrefix: false, readsData: false, writesImage: false },
  {
    name: 'convert',
    tsemu: (i, o) => ['img', 'convert', '-O', 'raw', i, o],
    peer: (i, o) => ['qemu-img', ['convert', '-O', 'raw', i, o]],
    sameExitCode: false,
    errorPrefix: true,
    readsData: true,
    writesImage: false,
  },
  { name: 'io', tsemu: (i) => ['io', '-c', 'read 0 64k', i], peer: (i) => ['qemu-io', ['-c', 'read 0 64k', i]], sameExitCode: false, errorPrefix: false, readsData: true, writesImage: true },
];

const STACK_TRACE = /^\s+at .+(\(|:\d+:\d+)/m;

async function hashFolder(dir: string): Promise<Map<string, string>> {
  const hashes = new Map<string, string>();
  for (const name of (await readdir(dir)).sort()) hashes.set(name, await sha256File(path.join(dir, name)));
  return hashes;
}

function show(r: BoundedResult): string {
  return `exit ${r.code}${r.signal ? ` signal ${r.signal}` : ''}${r.hung ? ' (hung)' : ''}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

/** The checks every tsemu run must pass whatever QEMU does. */
function assertWellBehaved(what: string, r: BoundedResult, problem: RegExp, errorPrefix: boolean, peer?: BoundedResult | null): void {
  assert.ok(!r.hung, `${what}: hung (killed by the guard)`);
  assert.equal(r.signal, null, `${what}: crashed\n${show(r)}`);
  assert.doesNotMatch(r.stderr + r.stdout, STACK_TRACE, `${what}: printed a stack trace\n${show(r)}`);
  if (r.code !== 0) {
    if (errorPrefix) assert.match(r.stderr, /^tsemu: /m, `${what}: failed without a "tsemu: …" error\n${show(r)}`);
    const sameAsPeer = peer && (r.stdout + r.stderr).trim() === (peer.stdout + peer.stderr).trim();
    if (!sameAsPeer) {
      assert.match(r.stdout + r.stderr, problem, `${what}: the error does not name the problem (${problem})\n${show(r)}`);
    }
  }
}

async function runCase(c: HostileCase, caseDir: string, outDir: string, base: string): Promise<void> {
  const img = c.make ? await c.make(caseDir, base) : await patchedCopy(caseDir, base, 'hostile', c.patch!);
  const failures: string[] = [];
  for (const cmd of COMMANDS) {
    const what = `${c.name}: tsemu ${cmd.name}`;
    const before = await hashFolder(caseDir);
    const t = await runBounded(process.execPath, [TSEMU_BIN, ...cmd.tsemu(img, path.join(outDir, `${cmd.name}-tsemu.raw`))]);
    const after = await hashFolder(caseDir);
    if (cmd.writesImage) {
      before.delete(path.basename(img));
      after.delete(path.basename(img));
    }
    const [peer, peerArgs] = cmd.peer(img, path.join(outDir, `${cmd.name}-peer.raw`));
    const peerHangs = (c.qemuHangsIn as readonly string[] | undefined)?.includes(cmd.name) ?? false;
    requirePeer(peer);
    const q = peerHangs ? null : await runBounded(peer, peerArgs);
    try {
      assert.deepEqual(after, before, `${what}: changed its input files`);
      assertWellBehaved(what, t, c.problem, cmd.errorPrefix, q);
      const peerCrashed = q === null || q.signal !== null || q.code < 0;
      if ((peerCrashed && cmd.readsData) || (q && q.code !== 0)) {
        assert.notEqual(t.code, 0, `${what}: succeeded where ${peer} fails (${q ? show(q) : 'never finishes'})\n${show(t)}`);
      }
      if (cmd.sameExitCode && q && !peerCrashed) {
        assert.equal(t.code, q.code, `${what}: exit code ${t.code}, ${peer} exits ${q.code}\n${show(t)}\n${peer}: ${show(q)}`);
      }
    } catch (e) {
      failures.push((e as Error).message);
    }
  }
  assert.equal(failures.length, 0, failures.join('\n\n'));
}

test('hostile qcow2 images', async (t) => {
  requirePeer('qemu-img');
  const { dir, cleanup } = await scratchDir();
  try {
    const bases = await makeBaseImages(dir);
    for (const [i, c] of HOSTILE_CASES.entries()) {
      await t.test(c.name, async () => {
        const caseDir = path.join(dir, `case-${i}`);
        const outDir = path.join(dir, `out-${i}`);
        await mkdir(caseDir);
        await mkdir(outDir);
        await runCase(c, caseDir, outDir, bases[c.base]);
      });
    }
  } finally {
    await cleanup();
  }
});

/** Runs `tsemu img snapshot -c` on an image where a refcount cannot go up, then checks the image. */
async function snapshotMustFailCleanly(image: string, dir: string): Promise<void> {
  const content = await readFile(await convertToRaw(image, dir, 'before'));
  const r = await runBounded(process.execPath, [TSEMU_BIN, 'img', 'snapshot', '-c', 'snap', image]);
  assertWellBehaved('tsemu img snapshot -c with a refcount at its maximum', r, /refcount/i, true);
  assert.notEqual(r.code, 0, `snapshot -c succeeded although a refcount would overflow\n${show(r)}`);
  const list = await mustRun(qemuImg(['snapshot', '-l', image]), 'qemu-img snapshot -l');
  assert.doesNotMatch(list.stdout, /snap/, 'a snapshot was recorded although creating it failed');
  const after = await readFile(await convertToRaw(image, dir, 'after'));
  assert.ok(content.equals(after), 'the failed snapshot changed the image content');
}

async function convertToRaw(image: string, dir: string, tag: string): Promise<string> {
  const out = path.join(dir, `${tag}.raw`);
  await mustRun(qemuImg(['convert', '-O', 'raw', image, out]), 'qemu-img convert');
  return out;
}

test('refcount overflow: snapshot of a refcount_bits=1 image', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const image = path.join(dir, 'rc1.qcow2');
    await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', '-o', 'refcount_bits=1', image, '4M']), 'qemu-img create');
    await mustRun(qemuIo(['-c', 'write -P 0x33 0 192k', image]), 'qemu-io write');
    await snapshotMustFailCleanly(image, dir);
    const check = await qemuImg(['check', image]);
    assert.ok(check.code === 0 || check.code === 3, `qemu-img check after the failed snapshot exited ${check.code}\n${check.stdout}${check.stderr}`);
  } finally {
    await cleanup();
  }
});

test('refcount overflow: snapshot when a 16-bit refcount is already 65535', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const image = path.join(dir, 'rc16max.qcow2');
    await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', image, '4M']), 'qemu-img create');
    await mustRun(qemuIo(['-c', 'write -P 0x44 0 64k', image]), 'qemu-io write');
    const buf = new Uint8Array(await readFile(image));
    const l = readLayout(buf);
    const host = Number(getU64(buf, l2EntryAt(buf, l, 0)) & OFFSET_MASK);
    const block = Number(getU64(buf, l.refcountTableOffset) & OFFSET_MASK);
    buf.fill(0xff, block + 2 * (host / l.clusterSize), block + 2 * (host / l.clusterSize) + 2);
    await writeFile(image, buf);
    await snapshotMustFailCleanly(image, dir);
  } finally {
    await cleanup();
  }
});
