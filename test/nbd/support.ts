/**
 * NBD test support: the test image, a free loopback port, and NBD servers
 * (`tsemu nbd serve`, qemu-nbd) started in the background and waited for through
 * their --pid-file (both write it once they listen), with their stderr kept for
 * failure messages and a stop registered with the test.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { ROOT, mustRun, qemuImg, qemuIo, requirePeer } from '../helpers/peers.js';

export const HOST = '127.0.0.1';
export const MiB = 1 << 20;

/** An 8 MiB qcow2 with data at [0,1M) and [5M,5.5M), zero clusters at [2M,3M), the rest unallocated. */
export async function makeImage(dir: string): Promise<string> {
  const image = path.join(dir, 'disk.qcow2');
  await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', image, '8M']), 'qemu-img create');
  await mustRun(
    qemuIo(['-f', 'qcow2', '-c', 'write -P 0x11 0 1M', '-c', 'write -z 2M 1M', '-c', 'write -P 0x22 5M 512k', image]),
    'qemu-io write',
  );
  return image;
}

/** A TCP port on 127.0.0.1 that was free a moment ago (bound, read, released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, HOST, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Background {
  child: ChildProcess;
  stderr(): string;
  /** Resolves with the exit code (or signal name) once the process has ended. */
  exited: Promise<number | string>;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<number | string>;
}

/** Generous: only a broken start takes this long. */
const READY_DEADLINE_MS = 60_000;

async function startWithPidFile(program: string, args: string[], pidFile: string): Promise<Background> {
  const child = spawn(program, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  let ended: number | string | null = null;
  void exited.then((c) => (ended = c));
  const deadline = Date.now() + READY_DEADLINE_MS;
  while (!existsSync(pidFile)) {
    if (ended !== null) throw new Error(`${program} ${args.join(' ')} exited (${ended}) before listening:\n${err}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${program} did not write its pid file in ${READY_DEADLINE_MS / 1000} s:\n${err}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    stderr: () => err,
    exited,
    stop: async () => {
      if (ended === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** `tsemu nbd serve ARGS` (the built CLI), ready to take clients. */
export function startTsemuNbd(args: string[], dir: string): Promise<Background> {
  const pidFile = path.join(dir, `tsemu-nbd-${Math.random().toString(36).slice(2)}.pid`);
  return startWithPidFile(process.execPath, [path.join(ROOT, 'bin/tsemu.js'), 'nbd', 'serve', '--pid-file', pidFile, ...args], pidFile);
}

/** qemu-nbd ARGS, ready to take clients. */
export function startQemuNbd(args: string[], dir: string): Promise<Background> {
  requirePeer('qemu-nbd');
  const pidFile = path.join(dir, `qemu-nbd-${Math.random().toString(36).slice(2)}.pid`);
  return startWithPidFile('qemu-nbd', [`--pid-file=${pidFile}`, ...args], pidFile);
}

/**
 * Starts `tsemu nbd serve` or qemu-nbd with ARGS on 127.0.0.1 and a free port (the
 * -b and -p arguments are added), stopped when the test ends.
 */
export async function serveOnLoopback(
  t: TestContext,
  program: 'tsemu' | 'qemu-nbd',
  args: string[],
  dir: string,
): Promise<{ server: Background; port: number; uri: string }> {
  const port = await freePort();
  const all = ['-b', HOST, '-p', String(port), ...args];
  const server = program === 'tsemu' ? await startTsemuNbd(all, dir) : await startQemuNbd(all, dir);
  t.after(() => server.stop());
  return { server, port, uri: `nbd://${HOST}:${port}` };
}
