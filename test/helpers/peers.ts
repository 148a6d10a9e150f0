/**
 * Test helpers: scratch folders, running the built tsemu CLI, and running peer
 * programs (qemu-img, qemu-io, …). A missing peer is a failure, never a skip:
 * interop is what these tests prove, and CI installs the peers (.ci/run).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** The CLI's launcher, run as a program the way users run it (its shell line starts node). */
export const TSEMU_BIN = path.join(ROOT, 'bin/tsemu.js');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Throws (fails the test) when `program` is not on PATH. */
export function requirePeer(program: string): void {
  const r = spawnSync('sh', ['-c', `command -v ${program}`]);
  if (r.status !== 0) {
    throw new Error(`peer program '${program}' is not installed: .ci/run installs it (apt-get)`);
  }
}

export function runProgram(program: string, args: readonly string[], opts: { input?: string; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }),
    );
    // A child that exits without reading its input makes this write fail with EPIPE: not an error here.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs the built CLI (`npm test` builds it first). */
export function tsemu(args: readonly string[], opts: { input?: string; cwd?: string } = {}): Promise<RunResult> {
  return runProgram(TSEMU_BIN, args, opts);
}

export async function qemuImg(args: readonly string[]): Promise<RunResult> {
  requirePeer('qemu-img');
  return runProgram('qemu-img', args);
}

export async function qemuIo(args: readonly string[]): Promise<RunResult> {
  requirePeer('qemu-io');
  return runProgram('qemu-io', args);
}

/** Like runProgram but throws with both outputs when the exit code is not 0. */
export async function mustRun(p: Promise<RunResult>, what: string): Promise<RunResult> {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** A fresh scratch folder, removed by the returned cleanup function. */
export async function scratchDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tsemu-test-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
