/**
 * Cluster codec micro-benchmark: what compressing one qcow2 cluster costs, to tell
 * the codec's own speed from the cost of the worker pool around it.
 *
 * For each codec (zlib, zstd) and each kind of data it reports
 *   - in-thread: codec.ts's encodeCluster on this thread, after a warm-up of
 *     --warmup clusters (WebAssembly code starts in a baseline tier and is
 *     recompiled when hot), in microseconds per cluster;
 *   - pool: --clusters clusters through compressCluster (index.ts), all submitted
 *     at once as views into one shared buffer the way the copy engine submits them,
 *     on a fresh pool, so worker start-up and warm-up are included: wall time and
 *     process CPU time per cluster.
 * Data kinds: "pattern" is the img-convert benchmark's data (pseudo-random bytes with
 * the low bit set: entropy coding wins about 12%), "text" repeats a short sentence,
 * "random" is incompressible (the result is null: qcow2 stores such clusters plain).
 *
 * Usage: npx tsx bench/compress-codec.ts [--clusters 2048] [--cluster-size 64K] [--warmup 256]
 * Needs the built dist/ (npm run build). Every kind x codec combination runs in its own child process so that pools and
 * warmed code do not carry over. Not a test.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { CompressionType } from '../src/block/compress/codec.js';
import { parseSize } from '../src/block/options.js';
import { patternBytes } from '../test/helpers/pattern.js';

// The codec runs from the built dist/, as the CLI runs it: workers started from
// sources would load tsx in every worker, which the CLI never pays.
const DIST = new URL('../dist/block/compress/', import.meta.url);
type Codec = typeof import('../src/block/compress/codec.js');
type Pool = typeof import('../src/block/compress/index.js');

const KINDS = ['pattern', 'text', 'random'] as const;
type Kind = (typeof KINDS)[number];

function makeData(kind: Kind, clusters: number, size: number): Buffer {
  const out = Buffer.from(new SharedArrayBuffer(clusters * size));
  const sentence = Buffer.from('The quick brown fox jumps over the lazy dog; qcow2 clusters compress. ');
  for (let i = 0; i < clusters; i++) {
    const at = i * size;
    if (kind === 'pattern') out.set(patternBytes(1, i, size), at);
    else if (kind === 'random') out.set(randomBytes(size), at);
    else for (let p = 0; p < size; p += sentence.length) out.set(sentence.subarray(0, Math.min(sentence.length, size - p)), at + p);
  }
  return out;
}

async function measure(type: CompressionType, kind: Kind, clusters: number, size: number, warmup: number): Promise<string> {
  const { encodeCluster } = (await import(new URL('codec.js', DIST).href)) as Codec;
  const { compressCluster } = (await import(new URL('index.js', DIST).href)) as Pool;
  const data = makeData(kind, clusters, size);
  const cluster = (i: number): Buffer => data.subarray((i % clusters) * size, ((i % clusters) + 1) * size);

  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const packed = await Promise.all(Array.from({ length: clusters }, (_, i) => compressCluster(type, cluster(i))));
  const poolWall = performance.now() - t0;
  const poolCpu = process.cpuUsage(cpu0);
  const out = packed.reduce((n, p) => n + (p ? p.length : size), 0);

  for (let i = 0; i < warmup; i++) await encodeCluster(type, cluster(i));
  const n = Math.min(clusters, 512);
  const t1 = performance.now();
  for (let i = 0; i < n; i++) await encodeCluster(type, cluster(i));
  const inThread = ((performance.now() - t1) / n) * 1000;

  const perCluster = (ms: number): string => ((ms * 1000) / clusters).toFixed(0);
  return [
    type.padEnd(5),
    kind.padEnd(8),
    `${((100 * out) / (clusters * size)).toFixed(1)}%`.padStart(7),
    inThread.toFixed(0).padStart(10),
    perCluster(poolWall).padStart(12),
    perCluster((poolCpu.user + poolCpu.system) / 1000).padStart(11),
  ].join('  ');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      clusters: { type: 'string', default: '2048' },
      'cluster-size': { type: 'string', default: '64K' },
      warmup: { type: 'string', default: '256' },
      child: { type: 'string' },
    },
  });
  const clusters = Number(values.clusters);
  const size = parseSize(values['cluster-size']!, 'cluster size');
  const warmup = Number(values.warmup);
  if (!Number.isInteger(clusters) || clusters < 1) throw new Error('--clusters must be a positive integer');
  if (!Number.isInteger(warmup) || warmup < 0) throw new Error('--warmup must be a whole number');
  if (size < 512 || size > 2 << 20) throw new Error('--cluster-size must be between 512 and 2M');

  if (!existsSync(new URL('index.js', DIST))) throw new Error('dist/ is not built: run `npm run build` first');
  if (values.child) {
    const [type, kind] = values.child.split(':') as [CompressionType, Kind];
    console.log(await measure(type, kind, clusters, size, warmup));
    process.exit(0);
  }
  console.log(`${clusters} clusters of ${size} bytes; times in microseconds per cluster`);
  console.log('codec  data      stored  in-thread  pool (wall)  pool (cpu)');
  const self = fileURLToPath(import.meta.url);
  for (const type of ['zlib', 'zstd'] as const) {
    for (const kind of KINDS) {
      const args = ['--import', 'tsx', self, '--clusters', String(clusters), '--cluster-size', String(size), '--warmup', String(warmup), '--child', `${type}:${kind}`];
      const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${type} ${kind}: ${r.stderr.trim()}`);
      process.stdout.write(r.stdout);
    }
  }
}

main().catch((e: Error) => {
  console.error(`compress-codec bench: ${e.message}`);
  process.exitCode = 1;
});
