/**
 * Running a program with a hang guard: the child is SIGKILLed when it outlives
 * the guard, and the result says so. This turns a hang into a test failure
 * instead of a stuck test run; the guard is minutes long, far beyond any normal
 * run, so it is not a timing assertion.
 */
import { spawn } from 'node:child_process';
import type { RunResult } from './peers.js';

export interface BoundedResult extends RunResult {
  /** The hang guard fired and the program was killed. */
  hung: boolean;
  /** Signal that ended the program, if any (a crash shows up here). */
  signal: NodeJS.Signals | null;
}

export const HANG_GUARD_MS = 120_000;

export function runBounded(program: string, args: readonly string[], opts: { cwd?: string } = {}): Promise<BoundedResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let hung = false;
    const guard = setTimeout(() => {
      hung = true;
      child.kill('SIGKILL');
    }, HANG_GUARD_MS);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e) => {
      clearTimeout(guard);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      resolve({
        code: code ?? -1,
        signal,
        hung,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      });
    });
  });
}
