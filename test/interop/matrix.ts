/**
 * The interop matrix: one table of qcow2 configurations (every create option
 * qemu-img 7.2 has for qcow2, plus compressed images, backing chains with
 * relative names and internal snapshots) and one table of guest operations
 * (pattern writes, aligned and not, zero writes with and without unmap, and a
 * discard of whole 2 MiB-aligned clusters so the result is the same for every
 * cluster size). The operations render to qemu-io commands for images that
 * qemu writes, run through tsemu's block layer for images tsemu writes, and
 * apply to an in-memory model that gives the expected raw content.
 * Not a test itself: the *.test.ts files of this folder build on it.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { patternBytes } from '../helpers/pattern.js';
import type { BlockNode } from '../../src/block/node.js';

const MiB = 1 << 20;
export const VIRTUAL_SIZE = 8 * MiB;

export type GuestOp =
  | { kind: 'write'; pattern: number; offset: number; length: number }
  | { kind: 'zero'; offset: number; length: number; unmap: boolean }
  | { kind: 'discard'; offset: number; length: number };

/** The workload every image gets (the overlays of a chain get their own, below). */
export const WORKLOAD: GuestOp[] = [
  { kind: 'write', pattern: 0x11, offset: 0, length: 64 * 1024 },
  { kind: 'write', pattern: 0x22, offset: 100 * 1024 + 17, length: 3000 },
  { kind: 'write', pattern: 0x33, offset: MiB, length: MiB },
  { kind: 'zero', offset: 1536 * 1024, length: 64 * 1024, unmap: false },
  { kind: 'write', pattern: 0x44, offset: 4 * MiB, length: 2 * MiB },
  { kind: 'discard', offset: 4 * MiB, length: 2 * MiB },
  { kind: 'write', pattern: 0x55, offset: 5 * MiB + 512, length: 512 },
  { kind: 'zero', offset: 6 * MiB, length: 256 * 1024, unmap: true },
  { kind: 'write', pattern: 0x66, offset: VIRTUAL_SIZE - 4096, length: 4096 },
];

/** Writes that an overlay puts over its backing file: partial clusters, and zeroes that hide backing data. */
export const OVERLAY_WORKLOAD: GuestOp[] = [
  { kind: 'write', pattern: 0x77, offset: 32 * 1024, length: 8192 },
  { kind: 'zero', offset: MiB + 4096, length: 128 * 1024, unmap: false },
  { kind: 'write', pattern: 0x88, offset: 7 * MiB + 100, length: 70000 },
];

export interface MatrixConfig {
  name: string;
  /** `-o` for create (empty: defaults). */
  options: string;
  /** Compressed: the content is written to a raw file and converted with `convert -c`. */
  compress?: 'zlib' | 'zstd';
  /** A three-image chain base <- mid <- top with relative backing names. */
  chain?: boolean;
  /** Internal snapshots taken between workload steps. */
  snapshots?: boolean;
}

export const CONFIGS: MatrixConfig[] = [
  { name: 'compat=0.10', options: 'compat=0.10' },
  { name: 'compat=1.1', options: 'compat=1.1' },
  ...[512, 4096, 65536, 2 * MiB].map((c) => ({ name: `cluster_size=${c}`, options: `cluster_size=${c}` })),
  ...[1, 2, 4, 8, 16, 32, 64].map((b) => ({ name: `refcount_bits=${b}`, options: `refcount_bits=${b}` })),
  { name: 'lazy_refcounts=on', options: 'lazy_refcounts=on' },
  { name: 'extended_l2=on', options: 'extended_l2=on' },
  { name: 'extended_l2=on cluster_size=2M', options: 'extended_l2=on,cluster_size=2M' },
  { name: 'compression zlib', options: '', compress: 'zlib' },
  { name: 'compression zstd', options: 'compression_type=zstd', compress: 'zstd' },
  ...['off', 'metadata', 'falloc', 'full'].map((p) => ({ name: `preallocation=${p}`, options: `preallocation=${p}` })),
  { name: 'backing chain (relative names)', options: '', chain: true },
  { name: 'compat=0.10 backing chain', options: 'compat=0.10', chain: true },
  { name: 'internal snapshots', options: '', snapshots: true },
];

/** Safe file name for a config. */
export function slug(cfg: MatrixConfig): string {
  return cfg.name.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '');
}

/** The bytes a write op leaves: seeded by its pattern number and offset, so misplaced data shows. */
export function writeData(op: GuestOp & { kind: 'write' }): Uint8Array {
  return patternBytes(op.pattern, op.offset, op.length);
}

/** qemu-io commands for `ops`; write data goes through pattern files (`write -s`) saved in `dataDir`. */
export async function qemuIoCommands(ops: readonly GuestOp[], dataDir: string): Promise<string[]> {
  await mkdir(dataDir, { recursive: true });
  const commands: string[] = [];
  for (const op of ops) {
    if (op.kind === 'write') {
      const file = path.join(dataDir, `pattern-${op.pattern}-${op.offset}-${op.length}.bin`);
      await writeFile(file, writeData(op));
      commands.push(`write -s ${file} ${op.offset} ${op.length}`);
    } else if (op.kind === 'zero') {
      commands.push(`write -z${op.unmap ? ' -u' : ''} ${op.offset} ${op.length}`);
    } else {
      commands.push(`discard ${op.offset} ${op.length}`);
    }
  }
  return commands;
}

/** Applies `ops` to the expected content (a discard of whole clusters reads back as zeroes without a backing file). */
export function applyToModel(model: Uint8Array, ops: readonly GuestOp[]): void {
  for (const op of ops) {
    if (op.kind === 'write') model.set(writeData(op), op.offset);
    else model.fill(0, op.offset, op.offset + op.length);
  }
}

/** Performs `ops` through tsemu's block layer. */
export async function applyToNode(node: BlockNode, ops: readonly GuestOp[]): Promise<void> {
  for (const op of ops) {
    if (op.kind === 'write') await node.write(op.offset, writeData(op));
    else if (op.kind === 'zero') await node.writeZeroes(op.offset, op.length, { mayUnmap: op.unmap });
    else await node.discard(op.offset, op.length);
  }
  await node.flush();
}

export function chainNames(dir: string): { base: string; mid: string; top: string } {
  return { base: path.join(dir, 'chain', 'base.qcow2'), mid: path.join(dir, 'chain', 'mid.qcow2'), top: path.join(dir, 'chain', 'top.qcow2') };
}
