/**
 * Guest I/O benchmark: the same RISC-V guest on tsemu and on qemu-system-riscv64
 * (TCG) in one run, its virtio disk and virtio network measured from inside.
 *
 * Guest: the bundled kernel (fixtures/images/riscv64) with root=/dev/vda on a fresh
 * qcow2 overlay over the ssh scenario's root file system (.cache/guests/riscv64-rootfs,
 * from scripts/guests/build-riscv64-rootfs.sh), --net user with ssh forwarded. Both
 * machines get 256 MiB, one hart, virtio-blk, virtio-net and virtio-rng on
 * virtio-mmio; QEMU boots through Debian's OpenSBI, tsemu through its own SBI. Over ssh, for each machine:
 *   disk write   dd of zeros to a file, conv=fsync   (timed by the guest's clock:
 *   disk read    dd of /dev/vda with iflag=direct     Debian's busybox dd prints no rate)
 *   net in       wget of a file from an HTTP server on the host's loopback
 *   net out      dd of zeros piped into nc to a TCP server on the host's loopback
 * each timed by the guest's monotonic clock (/proc/timer_list, nanoseconds, read by the
 * shell itself) around the command (the host side's view would count the user stacks'
 * buffering).
 * The machines alternate --repeat times (a fresh overlay each time); the table prints
 * the best MB/s of each and tsemu/QEMU (the issue's target: at least 0.5).
 *
 * Usage: npx tsx bench/guest-io.ts [--mib 16] [--repeat 2] [--deadline 600]
 * Needs the built CLI (npm run build), qemu-system-riscv64, qemu-img and ssh. Not a test.
 */
import { createServer } from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { runProgram } from '../test/helpers/peers.js';
import { BUNDLED_GUEST, DEBIAN_OPENSBI } from '../test/guests/riscv-guests.js';
import { GuestConsole, RISCV_ROOTFS, freePort, sshRootfs } from '../test/virtio-net/guest-console.js';

const BASE = RISCV_ROOTFS.base;
const APPEND = 'root=/dev/vda rw console=ttyS0';
const TARGET_RATIO = 0.5;

const { values } = parseArgs({
  options: { mib: { type: 'string', default: '16' }, repeat: { type: 'string', default: '2' }, deadline: { type: 'string', default: '600' } },
});
const MIB = Number(values.mib);
const REPEAT = Number(values.repeat);
const DEADLINE = Number(values.deadline);

type Metric = 'disk write' | 'disk read' | 'net in' | 'net out';
type Result = Record<Metric, number>;

async function ssh(port: number, command: string): Promise<string> {
  const r = await sshRootfs(port, command);
  if (r.code !== 0) throw new Error(`ssh ${command}: exit ${r.code}: ${r.stderr}`);
  return r.stdout + r.stderr;
}

/**
 * The guest's monotonic clock in nanoseconds, as shell code that sets $t: the "now at N nsecs"
 * line of /proc/timer_list (its third), read with the shell's builtin read, so no process
 * starts between the clock and the command timed (a fork and exec of cut(1) took 20 to 300 ms
 * in tsemu's guest, and /proc/uptime counts in 10 ms steps: QEMU's disk read takes 40 ms).
 */
const GUEST_NOW = 'now() { { read -r t; read -r t; read -r t; } < /proc/timer_list; t=${t#now at }; t=${t% nsecs}; }';

/** MB/s of `bytes` moved by a guest command, timed by the guest's clock around it. */
async function guestRate(port: number, command: string, bytes: number): Promise<number> {
  const out = await ssh(port, `${GUEST_NOW}; now; a=$t; ${command} >/dev/null 2>&1; now; echo "TIMES $a $t"`);
  const m = /TIMES (\d+) (\d+)/.exec(out);
  if (!m) throw new Error(`no times from '${command}' (is /proc/timer_list there?): ${out}`);
  return bytes / 1e6 / ((Number(m[2]) - Number(m[1])) / 1e9);
}

/** Serves MIB MiB of zeros over HTTP on the host's loopback. */
async function httpSource(): Promise<{ port: number; close(): void }> {
  const body = new Uint8Array(MIB << 20);
  const server = createHttpServer((_req, res) => {
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, close: () => server.close() };
}

/** Reads and drops every TCP connection's bytes on the host's loopback. */
async function tcpSink(): Promise<{ port: number; close(): void }> {
  const server = createServer((socket) => {
    socket.resume();
    socket.on('end', () => socket.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, close: () => server.close() };
}

async function measure(port: number): Promise<Result> {
  const count = MIB * 16;
  const write = await guestRate(port, `dd if=/dev/zero of=/root/io-bench bs=64k count=${count} conv=fsync`, MIB << 20);
  await ssh(port, 'rm -f /root/io-bench');
  const read = await guestRate(port, `dd if=/dev/vda of=/dev/null bs=64k count=${count} iflag=direct`, MIB << 20);
  const source = await httpSource();
  const netIn = await guestRate(port, `wget -q -O /dev/null http://10.0.2.2:${source.port}/zeros`, MIB << 20);
  source.close();
  const sink = await tcpSink();
  const netOut = await guestRate(port, `dd if=/dev/zero bs=64k count=${count} | nc 10.0.2.2 ${sink.port}`, MIB << 20);
  sink.close();
  return { 'disk write': write, 'disk read': read, 'net in': netIn, 'net out': netOut };
}

async function runOne(name: 'qemu' | 'tsemu', dir: string, kernel: string): Promise<Result> {
  const overlay = path.join(dir, `${name}.qcow2`);
  const made = await runProgram('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', BASE, '-F', 'qcow2', overlay]);
  if (made.code !== 0) throw new Error(`qemu-img create: ${made.stderr}`);
  const port = await freePort();
  const net = `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-:22`;
  const guest = name === 'qemu'
    ? GuestConsole.spawn('qemu-system-riscv64', [
      '-M', 'virt', '-m', '256M', '-smp', '1', '-bios', DEBIAN_OPENSBI, '-nographic', '-no-reboot', '-kernel', kernel, '-append', APPEND,
      '-drive', `file=${overlay},format=qcow2,if=none,id=d0`, '-device', 'virtio-blk-device,drive=d0',
      '-netdev', net, '-device', 'virtio-net-device,netdev=n0', '-device', 'virtio-rng-device',
    ])
    : GuestConsole.start([
      '-m', '256M', '--kernel', BUNDLED_GUEST.kernel, '--append', APPEND,
      '--drive', `file=${overlay},format=qcow2,if=virtio`, '--netdev', net, '--device', 'virtio-net,netdev=n0', '--device', 'virtio-rng',
    ]);
  try {
    await guest.waitFor(/TSEMU-ROOTFS-OK [\d./]+\r?\n/, DEADLINE);
    return await measure(port);
  } finally {
    guest.type('poweroff -f');
    await guest.stop(60);
  }
}

/** The better rate of each metric. */
function best(a: Result | null, b: Result): Result {
  if (!a) return b;
  const out = { ...a };
  for (const metric of Object.keys(b) as Metric[]) out[metric] = Math.max(a[metric], b[metric]);
  return out;
}

async function main(): Promise<void> {
  for (const file of [BASE, RISCV_ROOTFS.key]) if (!existsSync(file)) throw new Error(`${file} is missing: run ${RISCV_ROOTFS.makeWith}`);
  const dir = await mkdtemp(path.join(tmpdir(), 'tsemu-guest-io-'));
  try {
    const kernel = path.join(dir, 'Image');
    await writeFile(kernel, gunzipSync(readFileSync(BUNDLED_GUEST.kernel)));
    let qemu: Result | null = null;
    let tsemu: Result | null = null;
    for (let round = 0; round < REPEAT; round++) {
      qemu = best(qemu, await runOne('qemu', dir, kernel));
      tsemu = best(tsemu, await runOne('tsemu', dir, kernel));
    }
    if (!qemu || !tsemu) throw new Error('--repeat must be at least 1');
    console.log(`guest I/O, ${MIB} MiB each, best of ${REPEAT} alternating runs (MB/s; tsemu/QEMU, target >= ${TARGET_RATIO})`);
    console.log(`${'metric'.padEnd(12)} ${'qemu'.padStart(9)} ${'tsemu'.padStart(9)} ${'ratio'.padStart(7)}`);
    for (const metric of Object.keys(qemu) as Metric[]) {
      const ratio = tsemu[metric] / qemu[metric];
      console.log(`${metric.padEnd(12)} ${qemu[metric].toFixed(2).padStart(9)} ${tsemu[metric].toFixed(2).padStart(9)} ${ratio.toFixed(2).padStart(7)}${ratio < TARGET_RATIO ? '  below target' : ''}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
