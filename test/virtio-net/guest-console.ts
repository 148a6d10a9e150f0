/**
 * A `tsemu run` machine driven through its serial console, for the virtio-net
 * guest tests and bench/guest-io.ts: start() spawns the built CLI (spawn() any
 * machine program whose console is its stdio) with stdin, stdout and stderr as
 * pipes; waitFor() waits for a pattern in the console text printed since a
 * mark (a deadline bounds the wait only, it never times work: a miss fails
 * with the console's tail); type() writes a line to the guest's console;
 * stop() kills the machine if it is still running and waits for its exit.
 * Also: a free loopback TCP port for hostfwd=, a one-file HTTP server on
 * loopback for the guest to download from, and the ssh scenario's root file
 * system (scripts/guests/build-riscv64-rootfs.sh) with sshRootfs(), which runs
 * a command in such a guest as root with the image's key.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer } from 'node:net';
import path from 'node:path';
import { ROOT, runProgram, type RunResult } from '../helpers/peers.js';

/** The ssh scenario's root file system: a qcow2 base and the client key it authorizes. */
export const RISCV_ROOTFS = {
  base: path.join(ROOT, '.cache/guests/riscv64-rootfs/base.qcow2'),
  key: path.join(ROOT, '.cache/guests/riscv64-rootfs/id_ed25519'),
  makeWith: 'scripts/guests/build-riscv64-rootfs.sh',
};

/** `ssh -p PORT root@127.0.0.1 COMMAND` with the rootfs key (host keys are made afresh in each guest). */
export function sshRootfs(port: number, command: string): Promise<RunResult> {
  return runProgram('ssh', [
    '-p', String(port), '-i', RISCV_ROOTFS.key, '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
    '-o', 'HostKeyAlgorithms=ssh-ed25519', '-o', 'LogLevel=ERROR', 'root@127.0.0.1', command,
  ]);
}

export class GuestConsole {
  private text = '';
  private mark = 0;
  private readonly exited: Promise<number | null>;
  private waiter: (() => void) | null = null;

  private constructor(private readonly child: ChildProcess) {
    const onData = (d: string): void => {
      this.text += d;
      this.waiter?.();
    };
    child.stdout!.setEncoding('utf8').on('data', onData);
    child.stderr!.setEncoding('utf8').on('data', onData);
    child.stdin!.on('error', () => {});
    this.exited = new Promise((resolve) => child.on('close', (code) => {
      resolve(code);
      this.waiter?.();
    }));
  }

  /** `tsemu run ARGS` with the serial console on stdio. */
  static start(args: readonly string[]): GuestConsole {
    return GuestConsole.spawn(process.execPath, [path.join(ROOT, 'bin/tsemu.js'), 'run', '--serial', 'stdio', '--no-reboot', ...args]);
  }

  /** Any machine program whose console is its stdio (qemu-system-riscv64 -nographic). */
  static spawn(program: string, args: readonly string[]): GuestConsole {
    return new GuestConsole(spawn(program, args, { stdio: ['pipe', 'pipe', 'pipe'] }));
  }

  /** The first match of `pattern` printed after the last match waited for; fails after `seconds`. */
  async waitFor(pattern: RegExp, seconds: number): Promise<RegExpExecArray> {
    const deadline = Date.now() + seconds * 1000;
    for (;;) {
      const found = pattern.exec(this.text.slice(this.mark));
      if (found) {
        this.mark += found.index + found[0].length;
        return found;
      }
      if (this.child.exitCode !== null || this.child.signalCode !== null || Date.now() > deadline) {
        throw new Error(`console never showed ${pattern} (${this.child.exitCode === null ? 'deadline' : 'machine exited'})\n--- console (tail) ---\n${this.tail()}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = null;
    }
  }

  type(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  tail(lines = 40): string {
    return this.text.replace(/\r/g, '').split('\n').slice(-lines).join('\n');
  }

  get console(): string {
    return this.text;
  }

  /** Waits for the machine to exit by itself (a poweroff), up to `seconds`, then kills it. */
  async stop(seconds = 0): Promise<number | null> {
    const timer = setTimeout(() => this.child.kill('SIGKILL'), seconds * 1000);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Serves `body` at every path on 127.0.0.1 (a free port); returns the server and its port. */
export async function serveBytes(body: Uint8Array): Promise<{ server: Server; port: number }> {
  const server = createHttpServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port };
}
