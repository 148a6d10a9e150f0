/**
 * The host end of a guest forward to a command (guestfwd=…-cmd:CMD): each guest
 * connection starts `sh -c CMD`, whose standard input receives what the guest
 * sends and whose standard output is sent back to the guest (standard error stays
 * tsemu's). The stream is a Duplex that emits 'connect' once the command started,
 * as a socket would; destroying it, or the connection ending, kills the command.
 */
import { spawn } from 'node:child_process';
import { Duplex } from 'node:stream';

export function commandStream(command: string): Duplex {
  const child = spawn('sh', ['-c', command], { stdio: ['pipe', 'pipe', 'inherit'] });
  const stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
  child.once('spawn', () => stream.emit('connect'));
  child.once('error', (err) => stream.destroy(err));
  stream.once('close', () => {
    if (child.exitCode === null) child.kill();
  });
  return stream;
}
