/**
 * Helpers for tests of image locking between tsemu and QEMU processes: look at
 * a byte's OFD lock from a fresh open file description, start a process that
 * holds an image open and wait until its lock set is complete, stop it again,
 * and run qemu-io without standard input (a qemu-io refused by a lock exits at
 * once, and writing its empty stdin could then fail with EPIPE).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { F_WRLCK, ofdTestLock } from '../../src/block/protocols/linux-sys.js';
import { requirePeer, type RunResult } from './peers.js';

/** Is byte `offset` of the file locked by anyone? */
export function byteLocked(file: string, offset: number): boolean {
  const fd = openSync(file, 'r');
  try {
    return ofdTestLock(fd, F_WRLCK, offset, 1) !== null;
  } finally {
    closeSync(fd);
  }
}

/** qemu-io with no standard input, run to completion. */
export function qemuIoNoStdin(args: string[]): RunResult {
  requirePeer('qemu-io');
  const r = spawnSync('qemu-io', args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Starts `program args` (which opens `file`) and resolves once byte `lastByte`,
 * the last lock such a user takes, is visible: 201 for a qcow2 user (qcow2 users
 * never share write), 101 for a raw writer, 100 for a raw reader.
 */
export async function startLockHolder(
  program: string,
  args: string[],
  file: string,
  lastByte: number,
  cwd?: string,
): Promise<ChildProcess> {
  const child = spawn(program, args, { stdio: 'ignore', cwd });
  let exited = false;
  child.on('exit', () => (exited = true));
  while (!byteLocked(file, lastByte)) {
    if (exited) throw new Error(`${program} ${args.join(' ')} exited before it locked ${file}`);
    await sleep(20);
  }
  return child;
}

/** Ends a holder started by startLockHolder and waits for it to exit. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const done = new Promise((resolve) => child.on('exit', resolve));
  child.kill();
  await done;
}
