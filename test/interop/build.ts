/**
 * Builds one matrix configuration (matrix.ts) into a folder, either with the
 * real qemu-img/qemu-io (buildWithQemu) or with tsemu (buildWithTsemu: the CLI
 * for create/convert/snapshot, the block layer for guest writes), and returns
 * the image to look at plus the content it must have, computed from the model.
 * Snapshot configurations also return the content at snapshot "s1".
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { closeImage, openImage } from '../../src/block/open.js';
import { mustRun, qemuImg, qemuIo, tsemu } from '../helpers/peers.js';
import {
  type GuestOp,
  type MatrixConfig,
  OVERLAY_WORKLOAD,
  VIRTUAL_SIZE,
  WORKLOAD,
  applyToModel,
  applyToNode,
  qemuIoCommands,
  slug,
} from './matrix.js';

/** The top overlay's writes in a chain: different bytes over the mid layer's and the base's. */
const TOP_WORKLOAD: GuestOp[] = [
  { kind: 'write', pattern: 0x99, offset: 36 * 1024, length: 1000 },
  { kind: 'zero', offset: 7 * 1024 * 1024, length: 64 * 1024, unmap: true },
  { kind: 'write', pattern: 0xaa, offset: 3 * 1024 * 1024 - 512, length: 4096 },
];

const FIRST_HALF = WORKLOAD.slice(0, 4);
const SECOND_HALF = WORKLOAD.slice(4);

export interface BuiltImage {
  /** The image to read (the top of a chain). */
  image: string;
  /** Every image file the configuration made (a chain's layers, bottom first). */
  layers: string[];
  expected: Uint8Array;
  /** Content of snapshot "s1" (snapshot configurations only). */
  expectedAtS1?: Uint8Array;
}

function createOptions(cfg: MatrixConfig): string[] {
  return cfg.options ? ['-o', cfg.options] : [];
}

function model(...workloads: GuestOp[][]): Uint8Array {
  const m = new Uint8Array(VIRTUAL_SIZE);
  for (const w of workloads) applyToModel(m, w);
  return m;
}

/** Ops of the configuration's first layer, and the model after them. */
function plan(cfg: MatrixConfig): { expected: Uint8Array; expectedAtS1?: Uint8Array } {
  if (cfg.chain) return { expected: model(WORKLOAD, OVERLAY_WORKLOAD, TOP_WORKLOAD) };
  if (cfg.snapshots) return { expected: model(WORKLOAD, OVERLAY_WORKLOAD), expectedAtS1: model(FIRST_HALF) };
  if (cfg.compress) return { expected: model(WORKLOAD, OVERLAY_WORKLOAD) };
  return { expected: model(WORKLOAD) };
}

async function qemuWrite(image: string, ops: GuestOp[], dataDir: string): Promise<void> {
  const cmds = await qemuIoCommands(ops, dataDir);
  await mustRun(qemuIo(['-f', 'qcow2', ...cmds.flatMap((c) => ['-c', c]), image]), `qemu-io on ${path.basename(image)}`);
}

export async function buildWithQemu(cfg: MatrixConfig, root: string): Promise<BuiltImage> {
  const dir = path.join(root, `qemu-${slug(cfg)}`);
  await mkdir(dir, { recursive: true });
  const data = path.join(dir, 'data');
  const image = path.join(dir, 'image.qcow2');
  const size = String(VIRTUAL_SIZE);

  if (cfg.chain) {
    const layers = ['base', 'mid', 'top'].map((n) => path.join(dir, `${n}.qcow2`));
    const [base, mid, top] = layers as [string, string, string];
    await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', ...createOptions(cfg), base, size]), 'qemu-img create base');
    await qemuWrite(base, WORKLOAD, data);
    await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', ...createOptions(cfg), '-b', 'base.qcow2', '-F', 'qcow2', mid]), 'qemu-img create mid');
    await qemuWrite(mid, OVERLAY_WORKLOAD, data);
    await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', ...createOptions(cfg), '-b', 'mid.qcow2', '-F', 'qcow2', top]), 'qemu-img create top');
    await qemuWrite(top, TOP_WORKLOAD, data);
    return { image: top, layers, ...plan(cfg) };
  }
  if (cfg.compress) {
    const source = path.join(dir, 'source.raw');
    await writeFile(source, model(WORKLOAD));
    await mustRun(qemuImg(['convert', '-c', '-O', 'qcow2', ...createOptions(cfg), source, image]), 'qemu-img convert -c');
    await qemuWrite(image, OVERLAY_WORKLOAD, data);
    return { image, layers: [image], ...plan(cfg) };
  }
  await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', ...createOptions(cfg), image, size]), 'qemu-img create');
  if (cfg.snapshots) {
    await qemuWrite(image, FIRST_HALF, data);
    await mustRun(qemuImg(['snapshot', '-c', 's1', image]), 'qemu-img snapshot -c s1');
    await qemuWrite(image, SECOND_HALF, data);
    await mustRun(qemuImg(['snapshot', '-c', 's2', image]), 'qemu-img snapshot -c s2');
    await qemuWrite(image, OVERLAY_WORKLOAD, data);
  } else {
    await qemuWrite(image, WORKLOAD, data);
  }
  return { image, layers: [image], ...plan(cfg) };
}

async function tsemuWrite(image: string, ops: GuestOp[]): Promise<void> {
  const node = await openImage(image);
  try {
    await applyToNode(node, ops);
  } finally {
    await closeImage(node);
  }
}

export async function buildWithTsemu(cfg: MatrixConfig, root: string): Promise<BuiltImage> {
  const dir = path.join(root, `tsemu-${slug(cfg)}`);
  await mkdir(dir, { recursive: true });
  const image = path.join(dir, 'image.qcow2');
  const size = String(VIRTUAL_SIZE);

  if (cfg.chain) {
    const layers = ['base', 'mid', 'top'].map((n) => path.join(dir, `${n}.qcow2`));
    const [base, mid, top] = layers as [string, string, string];
    await mustRun(tsemu(['img', 'create', '-q', '-f', 'qcow2', ...createOptions(cfg), base, size]), 'tsemu img create base');
    await tsemuWrite(base, WORKLOAD);
    await mustRun(tsemu(['img', 'create', '-q', '-f', 'qcow2', ...createOptions(cfg), '-b', 'base.qcow2', '-F', 'qcow2', mid]), 'tsemu img create mid');
    await tsemuWrite(mid, OVERLAY_WORKLOAD);
    await mustRun(tsemu(['img', 'create', '-q', '-f', 'qcow2', ...createOptions(cfg), '-b', 'mid.qcow2', '-F', 'qcow2', top]), 'tsemu img create top');
    await tsemuWrite(top, TOP_WORKLOAD);
    return { image: top, layers, ...plan(cfg) };
  }
  if (cfg.compress) {
    const source = path.join(dir, 'source.raw');
    await writeFile(source, model(WORKLOAD));
    await mustRun(tsemu(['img', 'convert', '-c', '-O', 'qcow2', ...createOptions(cfg), source, image]), 'tsemu img convert -c');
    await tsemuWrite(image, OVERLAY_WORKLOAD);
    return { image, layers: [image], ...plan(cfg) };
  }
  await mustRun(tsemu(['img', 'create', '-q', '-f', 'qcow2', ...createOptions(cfg), image, size]), 'tsemu img create');
  if (cfg.snapshots) {
    await tsemuWrite(image, FIRST_HALF);
    await mustRun(tsemu(['img', 'snapshot', '-c', 's1', image]), 'tsemu img snapshot -c s1');
    await tsemuWrite(image, SECOND_HALF);
    await mustRun(tsemu(['img', 'snapshot', '-c', 's2', image]), 'tsemu img snapshot -c s2');
    await tsemuWrite(image, OVERLAY_WORKLOAD);
  } else {
    await tsemuWrite(image, WORKLOAD);
  }
  return { image, layers: [image], ...plan(cfg) };
}
