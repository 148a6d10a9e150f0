/**
 * Cluster codec micro-benchmark: what compressing one qcow2 cluster costs, to tell
 * the codec's own speed from the cost of the worker pool around it.
 *
 * For each codec (zlib, zstd) and each kind of data it reports, in microseconds per
 * cluster:
 *   - in-thread (cpu): codec.ts's encodeCluster on this thread (for zstd the default
 *     codec, libzstd where it loads), after a warm-up of --warmup clusters, into a
 *     reused output buffer; CPU time of the process while the pool's workers idle;
 *   - zstd-wasm: the same for the WebAssembly fallback (zstd-wasm.ts);
 *   - pool: --clusters clusters through withCompressedClusters (index.ts) the way the
 *     copy engine drives it under convert -c: 2 MiB chunks of a SharedArrayBuffer,
 *     8 in flight, on a fresh pool, so worker start-up and warm-up are included:
 *     wall time, process CPU time, and the CPU beyond the in-thread codec
 *     ("overhead": the pool's messages, worker start-up, the caller's side).
 * Data kinds: "pattern" is the img-convert benchmark's data (pseudo-random bytes with
 * the low bit set: entropy coding wins about 12%), "text" repeats a short sentence,
 * "random" is incompressible (the result is null: qcow2 stores such clusters plain).
 *
 * Usage: npx tsx bench/compress-codec.ts [--clusters 2048] [--cluster-size 64K] [--warmup 256]
 * Needs the built dist/ (npm run build). Every kind x codec combination runs in its own
 * child process so that pools and warmed code do not carry over. Not a test.
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
/** A copy-engine chunk (2 MiB) in 64 KiB clusters, and the copy engine's default chunks in flight. */
const CHUNK_CLUSTERS = 32;
const IN_FLIGHT = 8;
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

/** CPU time of the whole process (every thread), in milliseconds. */
function cpuMs(since?: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1000;
}

async function measure(type: CompressionType, kind: Kind, clusters: number, size: number, warmup: number): Promise<string> {
  const { encodeCluster, zstdBackend } = (await import(new URL('codec.js', DIST).href)) as Codec;
  const { withCompressedClusters } = (await import(new URL('index.js', DIST).href)) as Pool;
  const data = makeData(kind, clusters, size);
  const cluster = (i: number): Buffer => data.subarray((i % clusters) * size, ((i % clusters) + 1) * size);

  // The pool as the copy engine drives it: chunks of CHUNK_CLUSTERS clusters, IN_FLIGHT at once.
  let stored = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const chunks = Array.from({ length: Math.ceil(clusters / CHUNK_CLUSTERS) }, (_, i) => i);
  const next = async (): Promise<void> => {
    for (let c = chunks.shift(); c !== undefined; c = chunks.shift()) {
      const chunk = data.subarray(c * CHUNK_CLUSTERS * size, Math.min(clusters, (c + 1) * CHUNK_CLUSTERS) * size);
      await withCompressedClusters(type, chunk, size, async (packed) => {
        stored += packed.reduce((n, p) => n + (p ? p.length : size), 0);
      });
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, next));
  const poolWall = performance.now() - t0;
  const poolCpu = cpuMs(cpu0);

  // In this thread, after a warm-up: the codec alone (the pool's workers are idle by now).
  const n = Math.min(clusters, 512);
  const into = new Uint8Array(size);
  const inThread = async (encode: (c: Uint8Array) => unknown): Promise<number> => {
    for (let i = 0; i < warmup; i++) await encode(cluster(i));
    const cpu1 = process.cpuUsage();
    for (let i = 0; i < n; i++) await encode(cluster(i));
    return cpuMs(cpu1) / n;
  };
  const codec = await inThread((c) => encodeCluster(type, c, into));
  const wasm = type === 'zstd' ? await zstdBackend('wasm') : null;
  const wasmCodec = wasm ? await inThread((c) => wasm.compress(c, into.subarray(0, size - 1))) : null;

  const us = (ms: number): string => (ms * 1000).toFixed(0);
  return [
    type.padEnd(5),
    kind.padEnd(8),
    `${((100 * stored) / (clusters * size)).toFixed(1)}%`.padStart(7),
    us(codec).padStart(15),
    (wasmCodec === null ? '-' : us(wasmCodec)).padStart(10),
    us(poolWall / clusters).padStart(12),
    us(poolCpu / clusters).padStart(11),
    us(poolCpu / clusters - codec).padStart(9),
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
  console.log('codec  data      stored  in-thread (cpu)  zstd-wasm  pool (wall)  pool (cpu)  overhead');
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
