/**
 * User-mode networking benchmark: `tsemu net connect user tap,ifname=…` beside
 * slirp4netns and pasta in the same run, with the same namespace layout and the
 * same traffic generator.
 *
 * Sandbox: the benchmark re-runs itself inside a network namespace of its own (the
 * "host" namespace H: loopback, a veth pair holding the default route to nowhere, and
 * 10.0.2.2/32 on its loopback so pasta's host-side pings to the gateway are
 * answered there). Every program runs in H, so nothing it sends can leave the
 * machine. For each path a fresh guest namespace G gets a tap (tsemu's is made in
 * H and moved into G; slirp4netns and pasta make theirs in G) configured
 * statically: 10.0.2.15/24 (slirp4netns: its own 10.0.2.100), default route via
 * 10.0.2.2, which every tool maps to H's 127.0.0.1. Each tool keeps its default
 * MTU (tsemu 1500, slirp4netns 1500, pasta 65520); slirp4netns also runs with
 * --mtu=65520, as rootless container engines use it. tsemu's tap takes virtio-net
 * headers by default (vnet_hdr when the kernel offers it, as QEMU's tap), which gives
 * the user stack checksum and segmentation offloads at MTU 1500; tsemu also runs
 * with vnet_hdr=off, one frame per MTU-sized segment like slirp4netns.
 *
 * Cases (connections always opened from G to a server on H's 127.0.0.1 reached as
 * 10.0.2.2, the NAT path every tool has):
 * - guest→host: a Node client in G sends --size bytes, the server reads to EOF;
 * - host→guest: the server sends --size bytes, the client reads to EOF, then closes;
 * - ping: busybox ping -c --pings -i 0.2 10.0.2.2 from G (average round trip).
 * Throughput is timed on the server from accept to the end of the stream and the
 * byte count checked; the best of --repeat runs counts (paths interleave per round).
 * The CPU time the tool's process (every thread, user and system, from
 * /proc/PID/stat) spends per MB moved is measured too: on a loaded machine it
 * holds better than wall-clock throughput. The table shows MB/s (10^6 bytes),
 * CPU ms/MB, round trips, and the tsemu/peer ratios; the target is tsemu's
 * throughput >= slirp4netns's (at its default MTU).
 *
 * --cpu-prof DIR runs the tsemu process with node --cpu-prof (one .cpuprofile per
 * round in DIR, with a copy of the bundle its line numbers refer to) to see where
 * its time goes. --paths picks some of tsemu, tsemu-vnet-off, slirp4netns, slirp4netns-65520, pasta.
 *
 * Usage: npx tsx bench/net-user.ts [--size 128M] [--repeat 3] [--pings 20] [--cpu-prof DIR]
 *          [--paths tsemu,tsemu-vnet-off,slirp4netns,slirp4netns-65520,pasta]
 * Needs root, the built CLI (npm run build), ip, busybox, slirp4netns and pasta
 * (Debian packages iproute2, busybox, slirp4netns, passt). Not a test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseSize } from '../src/block/options.js';
import { requirePeer, ROOT, runProgram } from '../test/helpers/peers.js';

const TSEMU = path.join(ROOT, 'bin/tsemu.js');
const INSIDE_FLAG = '--inside-sandbox';
const GATEWAY = '10.0.2.2';
/** A deadline for one transfer or one tool's start-up: only so a broken path reports instead of hanging. */
const DEADLINE_MS = 300_000;
/** Linux's USER_HZ: the unit of /proc/PID/stat's CPU times. */
const CLOCK_TICKS = 100;

/** The traffic generator in the guest namespace: `node -e CLIENT send|recv HOST PORT BYTES`. */
const CLIENT = `
const net = require('node:net');
const [mode, host, port, size] = process.argv.slice(1);
const s = net.connect(Number(port), host);
s.on('error', (e) => { console.error(e.message); process.exit(1); });
if (mode === 'send') {
  s.on('connect', () => {
    const buf = Buffer.alloc(1 << 20, 0x5a);
    let left = Number(size);
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, buf.length);
        left -= n;
        if (!s.write(n === buf.length ? buf : buf.subarray(0, n))) return void s.once('drain', pump);
      }
      s.end();
    };
    pump();
  });
  s.resume();
} else {
  let got = 0;
  s.on('data', (d) => { got += d.length; });
  s.on('end', () => { console.log(got); s.end(); });
}
`;

async function must(args: string[]): Promise<string> {
  const r = await runProgram(args[0]!, args.slice(1));
  if (r.code !== 0) throw new Error(`${args.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

function inNs(ns: string, args: string[]): string[] {
  return ['ip', 'netns', 'exec', ns, ...args];
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `ready` every 50 ms until it holds; fails when `child` exits first or the deadline passes. */
async function waitFor(what: string, child: ChildProcess, output: () => string, ready: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  while (!(await ready())) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}): ${output().trim()}`);
    if (Date.now() > deadline) throw new Error(`${what} was not ready after ${DEADLINE_MS / 1000} s: ${output().trim()}`);
    await sleep(50);
  }
}

/** The tools running and the guest namespaces standing, for an interrupt to clean up. */
const liveTools = new Set<ChildProcess>();
const liveNamespaces = new Set<string>();

function startLogged(args: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(args[0]!, args.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  liveTools.add(child);
  child.once('exit', () => liveTools.delete(child));
  let text = '';
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  return { child, output: () => text };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** A networking path under test: sets up the guest namespace `ns` and returns the process that carries its traffic. */
interface NetPath {
  name: string;
  mtu: number;
  start(ns: string, round: number): Promise<ChildProcess>;
}

async function configureGuest(ns: string, ifname: string, addr: string, mtu: number): Promise<void> {
  await must(inNs(ns, ['ip', 'link', 'set', ifname, 'mtu', String(mtu), 'up']));
  await must(inNs(ns, ['ip', 'addr', 'add', `${addr}/24`, 'dev', ifname]));
  await must(inNs(ns, ['ip', 'route', 'add', 'default', 'via', GATEWAY]));
}

function tsemuPath(cpuProfDir: string | undefined, vnetHdrOff = false): NetPath {
  return {
    name: vnetHdrOff ? 'tsemu net connect user tap,vnet_hdr=off' : 'tsemu net connect user tap',
    mtu: 1500,
    async start(ns, round) {
      const ifname = `tsb${randomBytes(3).toString('hex')}`;
      const prof = cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`, `--cpu-prof-name=tsemu-net${vnetHdrOff ? '-vnet-off' : ''}-${round}.cpuprofile`] : [];
      const tap = `tap,ifname=${ifname},script=no,downscript=no${vnetHdrOff ? ',vnet_hdr=off' : ''}`;
      const { child, output } = startLogged([process.execPath, ...prof, TSEMU, 'net', 'connect', 'user', tap]);
      try {
        await waitFor('tsemu net connect', child, output, () => output().includes('tsemu: joined'));
        await must(['ip', 'link', 'set', ifname, 'netns', ns]);
        await configureGuest(ns, ifname, '10.0.2.15', 1500);
      } catch (err) {
        await stopChild(child);
        throw err;
      }
      return child;
    },
  };
}

function slirpPath(mtu: number | null): NetPath {
  return {
    name: mtu === null ? 'slirp4netns' : `slirp4netns --mtu=${mtu}`,
    mtu: mtu ?? 1500,
    async start(ns) {
      const { child, output } = startLogged(['slirp4netns', '--configure', ...(mtu === null ? [] : [`--mtu=${mtu}`]), '--netns-type=path', `/run/netns/${ns}`, 'tap0']);
      try {
        await waitFor('slirp4netns', child, output, async () => (await runProgram('ip', ['-n', ns, '-4', 'route', 'show', 'default'])).stdout.includes(GATEWAY));
      } catch (err) {
        await stopChild(child);
        throw err;
      }
      return child;
    },
  };
}

function pastaPath(): NetPath {
  return {
    name: 'pasta',
    mtu: 65520,
    async start(ns) {
      const { child, output } = startLogged([
        'pasta', '--foreground', '--quiet', '--runas', '0', '--ipv4-only', '--config-net', '--ns-ifname', 'tap0',
        '--address', '10.0.2.15', '--netmask', '24', '--gateway', GATEWAY, '--dns', 'none',
        '--tcp-ports', 'none', '--udp-ports', 'none', '--tcp-ns', 'none', '--udp-ns', 'none', '--netns', ns,
      ]);
      try {
        await waitFor('pasta', child, output, async () => (await runProgram('ip', ['-n', ns, '-4', 'route', 'show', 'default'])).stdout.includes(GATEWAY));
      } catch (err) {
        await stopChild(child);
        throw err;
      }
      return child;
    },
  };
}

/** CPU seconds a process has used so far (utime + stime of /proc/PID/stat, every thread). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/**
 * One connection from the guest to a server on 127.0.0.1: MB/s timed on the server
 * from accept to the stream's end, and the CPU time process `pid` spent per MB.
 */
async function transfer(ns: string, direction: 'guest→host' | 'host→guest', size: number, pid: number): Promise<{ mbps: number; cpuMsPerMb: number }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const timed = new Promise<number>((resolve, reject) => {
    server.once('connection', (sock: Socket) => {
      server.close();
      const start = process.hrtime.bigint();
      const seconds = (): number => Number(process.hrtime.bigint() - start) / 1e9;
      sock.on('error', reject);
      if (direction === 'guest→host') {
        let got = 0;
        sock.on('data', (d: Buffer) => (got += d.length));
        sock.on('end', () => {
          const s = seconds();
          sock.end();
          if (got === size) resolve(s);
          else reject(new Error(`the server received ${got} of ${size} bytes`));
        });
      } else {
        const buf = Buffer.alloc(1 << 20, 0xa5);
        let left = size;
        const pump = (): void => {
          while (left > 0) {
            const n = Math.min(left, buf.length);
            left -= n;
            if (!sock.write(n === buf.length ? buf : buf.subarray(0, n))) return void sock.once('drain', pump);
          }
          sock.end();
        };
        pump();
        sock.resume();
        sock.on('end', () => resolve(seconds()));
      }
    });
  });
  const mode = direction === 'guest→host' ? 'send' : 'recv';
  const cpuBefore = await cpuSeconds(pid);
  const client = runProgram('ip', ['netns', 'exec', ns, process.execPath, '-e', CLIENT, mode, GATEWAY, String(port), String(size)]);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${direction} transfer not finished after ${DEADLINE_MS / 1000} s`)), DEADLINE_MS);
  });
  try {
    const [seconds, r] = await Promise.race([Promise.all([timed, client]), deadline]);
    if (r.code !== 0) throw new Error(`the guest's client exited ${r.code}: ${r.stderr.trim()}`);
    if (mode === 'recv' && Number(r.stdout) !== size) throw new Error(`the guest received ${r.stdout.trim()} of ${size} bytes`);
    return { mbps: size / seconds / 1e6, cpuMsPerMb: ((await cpuSeconds(pid)) - cpuBefore) * 1e3 / (size / 1e6) };
  } finally {
    clearTimeout(timer);
    server.close();
  }
}

/** Average ping round trip to the gateway in milliseconds. */
async function ping(ns: string, count: number): Promise<number> {
  const out = await must(inNs(ns, ['busybox', 'ping', '-c', String(count), '-i', '0.2', '-W', '5', GATEWAY]));
  const m = /min\/avg\/max = [\d.]+\/([\d.]+)\//.exec(out);
  if (!m) throw new Error(`ping ${GATEWAY}: no round-trip summary in: ${out.trim()}`);
  return Number(m[1]);
}

interface PathResult {
  /** MB/s. */
  up: number;
  down: number;
  /** CPU time of the tool's process (all threads, user and system) per MB moved. */
  upCpu: number;
  downCpu: number;
  pingMs: number;
}

async function measure(p: NetPath, round: number, size: number, pings: number): Promise<PathResult> {
  const ns = `tsemu-bench-g-${randomBytes(3).toString('hex')}`;
  liveNamespaces.add(ns); // before it exists: an interrupt may come while `ip netns add` runs
  await must(['ip', 'netns', 'add', ns]);
  try {
    await must(inNs(ns, ['ip', 'link', 'set', 'lo', 'up']));
    const child = await p.start(ns, round);
    try {
      const up = await transfer(ns, 'guest→host', size, child.pid!);
      const down = await transfer(ns, 'host→guest', size, child.pid!);
      return { up: up.mbps, down: down.mbps, upCpu: up.cpuMsPerMb, downCpu: down.cpuMsPerMb, pingMs: await ping(ns, pings) };
    } catch (err) {
      throw new Error(`${p.name}, round ${round + 1}: ${(err as Error).message}`);
    } finally {
      await stopChild(child);
    }
  } finally {
    await runProgram('ip', ['netns', 'del', ns]);
    liveNamespaces.delete(ns);
  }
}

/** On an interrupt inside the sandbox: kill the tools, delete the guest namespaces, exit. */
function cleanUpOnInterrupt(): void {
  let stopping = false;
  // Repeats are ignored: a terminal's Ctrl-C reaches this process both directly and through tsx.
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    for (const child of liveTools) child.kill('SIGKILL');
    void Promise.all([...liveNamespaces].map((ns) => runProgram('ip', ['netns', 'del', ns]))).then(() => process.exit(130));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => r[col]!.length)));
  for (const r of rows) console.log(r.map((cell, col) => pad(cell, widths[col]!)).join('  ').trimEnd());
}

/** The paths --paths chooses from, in the table's order. */
const PATH_NAMES = ['tsemu', 'tsemu-vnet-off', 'slirp4netns', 'slirp4netns-65520', 'pasta'];

async function runInside(chosen: string[], size: number, repeat: number, pings: number, cpuProfDir: string | undefined): Promise<void> {
  const all: Record<string, NetPath> = { tsemu: tsemuPath(cpuProfDir), 'tsemu-vnet-off': tsemuPath(cpuProfDir, true), slirp4netns: slirpPath(null), 'slirp4netns-65520': slirpPath(65520), pasta: pastaPath() };
  const paths = PATH_NAMES.filter((n) => chosen.includes(n)).map((n) => all[n]!);
  const best = new Map<NetPath, PathResult>();
  for (let round = 0; round < repeat; round++) {
    for (const p of paths) {
      const r = await measure(p, round, size, pings);
      const b = best.get(p);
      best.set(p, b ? {
        up: Math.max(b.up, r.up), down: Math.max(b.down, r.down), upCpu: Math.min(b.upCpu, r.upCpu), downCpu: Math.min(b.downCpu, r.downCpu),
        pingMs: Math.min(b.pingMs, r.pingMs),
      } : r);
    }
  }
  console.log(`TCP ${size} bytes each way, best of ${repeat}; ping: average of ${pings} echoes to ${GATEWAY} (best round);`);
  console.log('CPU: the tool\'s process, all threads, user + system, per MB moved (lower is better)\n');
  const rows = [['path', 'MTU', 'guest→host MB/s', 'host→guest MB/s', 'g→h CPU ms/MB', 'h→g CPU ms/MB', 'ping ms']];
  for (const p of paths) {
    const r = best.get(p)!;
    rows.push([p.name, String(p.mtu), r.up.toFixed(1), r.down.toFixed(1), r.upCpu.toFixed(2), r.downCpu.toFixed(2), r.pingMs.toFixed(3)]);
  }
  const t = best.get(paths[0]!)!;
  rows.push(rows[0]!.map(() => ''));
  // Throughput: tsemu's share of the peer's (higher is better); CPU and ping: tsemu's multiple of the peer's (lower is better).
  for (const p of paths.slice(1)) {
    const r = best.get(p)!;
    const ratio = (a: number, b: number): string => (a / b).toFixed(2);
    rows.push([`tsemu / ${p.name}`, '', ratio(t.up, r.up), ratio(t.down, r.down), ratio(t.upCpu, r.upCpu), ratio(t.downCpu, r.downCpu), ratio(t.pingMs, r.pingMs)]);
  }
  printTable(rows);
  const slirp = best.get(all.slirp4netns!);
  if (slirp === undefined) return;
  const met = t.up >= slirp.up && t.down >= slirp.down;
  console.log(`\ntarget (tsemu throughput >= slirp4netns's at its default MTU, both directions): ${met ? 'met' : 'MISSED'}`);
}

/** Makes the sandbox namespace and re-runs this script inside it. */
async function runSandboxed(argv: string[]): Promise<void> {
  const host = `tsemu-bench-h-${randomBytes(3).toString('hex')}`;
  await must(['ip', 'netns', 'add', host]);
  try {
    await must(inNs(host, ['ip', 'link', 'set', 'lo', 'up']));
    await must(inNs(host, ['ip', 'addr', 'add', `${GATEWAY}/32`, 'dev', 'lo']));
    // A veth pair whose far end has no address: the default route pasta looks for, leading nowhere.
    await must(inNs(host, ['ip', 'link', 'add', 'out0', 'type', 'veth', 'peer', 'name', 'out1']));
    await must(inNs(host, ['ip', 'addr', 'add', '198.51.100.1/24', 'dev', 'out0']));
    await must(inNs(host, ['ip', 'link', 'set', 'out0', 'up']));
    await must(inNs(host, ['ip', 'link', 'set', 'out1', 'up']));
    await must(inNs(host, ['ip', 'route', 'add', 'default', 'via', '198.51.100.254']));
    // pasta answers the guest's pings through unprivileged ICMP sockets.
    await must(inNs(host, ['sysctl', '-q', '-w', 'net.ipv4.ping_group_range=0 2147483647']));
    const child = spawn('ip', ['netns', 'exec', host, process.execPath, ...process.execArgv, process.argv[1]!, INSIDE_FLAG, ...argv], { stdio: 'inherit' });
    // An interrupt reaches the inner run too: wait for it to clean up, then delete the sandbox.
    const ignore = (): void => {};
    process.on('SIGINT', ignore);
    process.on('SIGTERM', ignore);
    const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? 1)));
    process.exitCode = code;
  } finally {
    await runProgram('ip', ['netns', 'del', host]);
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const inside = argv[0] === INSIDE_FLAG;
  const { values } = parseArgs({
    args: inside ? argv.slice(1) : argv,
    options: {
      size: { type: 'string', default: '128M' },
      repeat: { type: 'string', default: '3' },
      pings: { type: 'string', default: '20' },
      'cpu-prof': { type: 'string' },
      paths: { type: 'string', default: PATH_NAMES.join(',') },
    },
  });
  const size = parseSize(values.size!, 'transfer size');
  const repeat = Number(values.repeat);
  const pings = Number(values.pings);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error('--repeat must be a positive integer');
  if (!Number.isInteger(pings) || pings < 1) throw new Error('--pings must be a positive integer');
  if (size < 1) throw new Error('--size must be at least one byte');
  const chosen = values.paths!.split(',');
  for (const name of chosen) if (!PATH_NAMES.includes(name)) throw new Error(`--paths: '${name}' is not one of ${PATH_NAMES.join(', ')}`);
  if (!chosen.includes('tsemu')) throw new Error('--paths must include tsemu (the ratios are tsemu\'s)');
  const cpuProf = values['cpu-prof'] && path.resolve(values['cpu-prof']);
  if (inside) {
    cleanUpOnInterrupt();
    return runInside(chosen, size, repeat, pings, cpuProf);
  }
  // The profile's line numbers are the bundle's: keep the bundle they refer to beside it.
  if (cpuProf) {
    await mkdir(cpuProf, { recursive: true });
    await copyFile(path.join(ROOT, 'dist/bundle/cli.cjs'), path.join(cpuProf, 'cli.cjs'));
  }
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces, /dev/net/tun)');
  for (const peer of ['ip', 'busybox', 'sysctl', 'slirp4netns', 'pasta']) requirePeer(peer);
  if (!existsSync(path.join(ROOT, 'dist/bundle/cli.cjs'))) throw new Error('the CLI is not built: run `npm run build` first');
  await runSandboxed(argv);
}

main().catch((e: Error) => {
  console.error(`net-user bench: ${e.message}`);
  process.exitCode = 1;
});
