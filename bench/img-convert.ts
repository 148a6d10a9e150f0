/**
 * `img convert` benchmark: tsemu against qemu-img in the same run, on the same
 * input, on the same machine (absolute times drift on shared machines; ratios
 * measured side by side hold).
 *
 * Input: a raw image of --size bytes (default 1G, QEMU size suffixes) made of
 * 64 KiB clusters in alternating runs of 1-16 data clusters (seeded pseudo-random
 * bytes) and 1-16 zero clusters (every other zero run written as zero bytes, the
 * rest left as holes), about half data, half zeroes; the layout and bytes depend
 * only on --seed. Cases: raw to qcow2, vmdk (monolithicSparse), vmdk streamOptimized,
 * vdi and vhdx, each format back to raw (from an image qemu-img made of the input),
 * and raw->qcow2 -c (zlib) and -c -o compression_type=zstd. Every output
 * is checked with `qemu-img compare` against the input. The table shows both
 * wall times (best of --repeat runs) and tsemu/qemu-img with its target (qcow2 -c
 * <= 1.0, every other case <= 1.25), both CPU times (user + system of all
 * threads, least of the runs; bash's `times`) and their ratio, then the load
 * average at the start and the end, then `img info` start-up latency (median of
 * --info-runs runs) beside that of Node.js itself starting and exiting
 * (`node -e 0`, the floor of any Node program's start-up on the machine).
 * tsemu runs as users run it: bin/tsemu.js as a program (its shell line keeps
 * NODE_EXTRA_CA_CERTS from Node's start-up and hands it to the CLI); the
 * start-up rows also show `node bin/tsemu.js`, where Node loads that file itself.
 * Scratch files live in os.tmpdir() and are removed at the end.
 *
 * Usage: npx tsx bench/img-convert.ts [--size 1G] [--seed 1] [--repeat 1] [--info-runs 10]
 *        [--cases REGEX]   (only the cases whose name matches, e.g. --cases vdi)
 *        [--tsemu PATH]    (another build's bin/tsemu.js, e.g. a frozen copy of an
 *                           older build for A/B runs; default: this tree's)
 * Needs the built CLI (npm run build) and qemu-img on PATH. Not a test.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseSize } from '../src/block/options.js';
import { makeRng, patternBytes } from '../test/helpers/pattern.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TSEMU = path.join(ROOT, 'bin/tsemu.js');
const CLUSTER = 65536;
const MAX_RUN = 16;

interface Timed {
  seconds: number;
  code: number;
  stderr: string;
}

function run(program: string, args: readonly string[]): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(program, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({ seconds: Number(process.hrtime.bigint() - start) / 1e9, code: code ?? -1, stderr }),
    );
  });
}

async function mustRun(program: string, args: readonly string[]): Promise<Timed> {
  const r = await run(program, args);
  if (r.code !== 0) throw new Error(`${program} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r;
}

/**
 * Runs a program under bash and also returns its CPU time (user + system, all
 * threads): the children's line of bash's `times`, printed last on stderr.
 */
async function mustRunWithCpu(program: string, args: readonly string[]): Promise<Timed & { cpu: number }> {
  const r = await mustRun('bash', ['-c', '"$@"; s=$?; times >&2; exit $s', 'bash', program, ...args]);
  const m = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(r.stderr);
  if (!m) throw new Error(`no CPU times from bash for ${program}: ${r.stderr.trim()}`);
  return { ...r, cpu: Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]) };
}

/** Writes the input image; returns how many bytes are data. */
async function makeInput(file: string, size: number, seed: number): Promise<number> {
  const rng = makeRng(seed);
  const fh = await open(file, 'w');
  let dataBytes = 0;
  try {
    await fh.truncate(size);
    const zeroes = new Uint8Array(CLUSTER * MAX_RUN);
    let writeZeroRun = false;
    for (let pos = 0, data = true, n = 0; pos < size; data = !data, n++) {
      const len = Math.min(rng.int(1, MAX_RUN) * CLUSTER, size - pos);
      if (data) {
        await fh.write(patternBytes(seed, n, len), 0, len, pos);
        dataBytes += len;
      } else {
        if (writeZeroRun) await fh.write(zeroes, 0, len, pos);
        writeZeroRun = !writeZeroRun;
      }
      pos += len;
    }
  } finally {
    await fh.close();
  }
  return dataBytes;
}

/** An input image: the raw input itself, or what qemu-img converts it to with these arguments. */
interface Input {
  format: string;
  args: string[];
}

interface Case {
  name: string;
  input: Input;
  outFormat: string;
  args: string[];
  target: number;
}

const RAW: Input = { format: 'raw', args: [] };
const STREAM_OPTIMIZED = ['-o', 'subformat=streamOptimized'];

/** A conversion to a format and, with `reverse`, from that format (made by qemu-img) back to raw. */
function bothWays(name: string, format: string, args: string[], target: number): Case[] {
  return [
    { name: `raw -> ${name}`, input: RAW, outFormat: format, args, target },
    { name: `${name} -> raw`, input: { format, args }, outFormat: 'raw', args: [], target },
  ];
}

const CASES: Case[] = [
  ...bothWays('qcow2', 'qcow2', [], 1.25),
  { name: 'raw -> qcow2 -c (zlib)', input: RAW, outFormat: 'qcow2', args: ['-c'], target: 1.0 },
  { name: 'raw -> qcow2 -c zstd', input: RAW, outFormat: 'qcow2', args: ['-c', '-o', 'compression_type=zstd'], target: 1.0 },
  ...bothWays('vmdk', 'vmdk', [], 1.25),
  ...bothWays('vmdk streamOptimized', 'vmdk', STREAM_OPTIMIZED, 1.25),
  ...bothWays('vdi', 'vdi', [], 1.25),
  ...bothWays('vhdx', 'vhdx', [], 1.25),
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      size: { type: 'string', default: '1G' },
      seed: { type: 'string', default: '1' },
      repeat: { type: 'string', default: '1' },
      'info-runs': { type: 'string', default: '10' },
      cases: { type: 'string', default: '' },
      tsemu: { type: 'string', default: TSEMU },
    },
  });
  const size = parseSize(values.size!, 'benchmark size');
  if (size < CLUSTER || size % CLUSTER !== 0) throw new Error(`--size must be a positive multiple of ${CLUSTER} bytes`);
  const seed = Number(values.seed);
  const repeat = Number(values.repeat);
  const infoRuns = Number(values['info-runs']);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error('--repeat must be a positive integer');
  if (!Number.isInteger(infoRuns) || infoRuns < 1) throw new Error('--info-runs must be a positive integer');
  const tsemu = path.resolve(values.tsemu!);
  if (!existsSync(path.join(path.dirname(tsemu), '../dist/bundle/cli.cjs'))) {
    throw new Error(`the CLI is not built (no dist/bundle/cli.cjs beside ${tsemu}): run \`npm run build\` first`);
  }
  const only = new RegExp(values.cases!, 'i');
  const cases = CASES.filter((c) => only.test(c.name));
  if (cases.length === 0) throw new Error(`--cases '${values.cases}' matches no case`);

  const dir = await mkdtemp(path.join(tmpdir(), 'tsemu-bench-'));
  const cleanup = (): Promise<void> => rm(dir, { recursive: true, force: true });
  process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    const raw = path.join(dir, 'input.raw');
    process.stdout.write(`building a ${size}-byte input (seed ${seed}) in ${dir} ... `);
    const dataBytes = await makeInput(raw, size, seed);
    process.stdout.write(`${((100 * dataBytes) / size).toFixed(1)}% data\n\n`);
    const inputs = new Map<Input, string>([[RAW, raw]]);
    const inputFile = async (input: Input): Promise<string> => {
      let file = inputs.get(input);
      if (!file) {
        file = path.join(dir, `input-${inputs.size}.${input.format}`);
        await mustRun('qemu-img', ['convert', '-O', input.format, ...input.args, raw, file]);
        inputs.set(input, file);
      }
      return file;
    };

    const loadAtStart = loadavg();
    const rows: string[][] = [['case', 'qemu-img s', 'tsemu s', 'tsemu/qemu', 'target', '', 'CPU s: qemu-img', 'tsemu', 'ratio']];
    let allOk = true;
    for (const c of cases) {
      const input = await inputFile(c.input);
      const best = { qemu: Infinity, tsemu: Infinity };
      const cpu = { qemu: Infinity, tsemu: Infinity };
      for (let i = 0; i < repeat; i++) {
        for (const who of ['qemu', 'tsemu'] as const) {
          const out = path.join(dir, `out-${who}.${c.outFormat}`);
          await rm(out, { force: true });
          const args = ['convert', ...c.args, '-O', c.outFormat, input, out];
          const r = who === 'qemu' ? await mustRunWithCpu('qemu-img', args) : await mustRunWithCpu(tsemu, ['img', ...args]);
          best[who] = Math.min(best[who], r.seconds);
          cpu[who] = Math.min(cpu[who], r.cpu);
          const cmp = await run('qemu-img', ['compare', '-f', 'raw', '-F', c.outFormat, raw, out]);
          if (cmp.code !== 0) throw new Error(`${c.name}: ${who}'s output differs from the input: ${cmp.stderr.trim()}`);
          await rm(out, { force: true });
        }
      }
      const ratio = best.tsemu / best.qemu;
      const ok = ratio <= c.target;
      allOk &&= ok;
      rows.push([
        c.name, best.qemu.toFixed(2), best.tsemu.toFixed(2), ratio.toFixed(2), `<= ${c.target.toFixed(2)}`, ok ? 'ok' : 'MISSED',
        cpu.qemu.toFixed(2), cpu.tsemu.toFixed(2), (cpu.tsemu / cpu.qemu).toFixed(2),
      ]);
    }

    const small = path.join(dir, 'small.qcow2');
    await mustRun('qemu-img', ['create', '-q', '-f', 'qcow2', small, '1G']);
    const latency = { qemu: [] as number[], tsemu: [] as number[], viaNode: [] as number[], node: [] as number[] };
    for (let i = 0; i < infoRuns; i++) {
      latency.qemu.push((await mustRun('qemu-img', ['info', small])).seconds);
      latency.tsemu.push((await mustRun(tsemu, ['img', 'info', small])).seconds);
      latency.viaNode.push((await mustRun(process.execPath, [tsemu, 'img', 'info', small])).seconds);
      latency.node.push((await mustRun(process.execPath, ['-e', '0'])).seconds);
    }
    const q = median(latency.qemu);
    const t = median(latency.tsemu);
    rows.push([`img info start-up (median of ${infoRuns})`, q.toFixed(3), t.toFixed(3), (t / q).toFixed(2), '', '']);
    rows.push([`  run as node bin/tsemu.js`, '', median(latency.viaNode).toFixed(3), '', '', '']);
    rows.push([`  node itself (node -e 0)`, '', median(latency.node).toFixed(3), '', '', '']);

    const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => (r[col] ?? '').length)));
    for (const r of rows) console.log(r.map((cell, col) => pad(cell, widths[col]!)).join('  ').trimEnd());
    const load = (l: number[]): string => l.map((x) => x.toFixed(2)).join(' ');
    console.log(`\nload average (1, 5, 15 min): ${load(loadAtStart)} at the start, ${load(loadavg())} at the end`);
    console.log(allOk ? '\nall convert targets met' : '\nsome convert targets missed');
  } finally {
    await cleanup();
  }
}

main().catch((e: Error) => {
  console.error(`img-convert bench: ${e.message}`);
  process.exitCode = 1;
});
