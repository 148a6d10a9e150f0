/**
 * The crash test's write plan, shared by the writer child and the parent that
 * checks its work: a deterministic list of operations (write / write zeroes /
 * compressed cluster write) from (config, runSeed, firstSeq), so the parent can
 * recompute what every sequence number wrote, and check what survived a kill
 * (unexplainedByte). Data for a write is
 * patternBytes(runSeed, seq, length). Compressed writes each get a cluster of
 * their own in the upper half of the image (QEMU never compresses over an
 * allocated cluster); the other operations stay in the lower half when the
 * configuration compresses, and span the whole image otherwise.
 */
import { makeRng, patternBytes } from '../helpers/pattern.js';

export interface CrashConfig {
  name: string;
  /** qemu-img create -o options for the image under test. */
  createOptions: string;
  /** Virtual size in bytes. */
  size: number;
  clusterSize: number;
  /** Fraction of operations that are compressed cluster writes (0 = none). */
  compressedShare: number;
  /** Overlay on a qcow2 backing file that qemu-io filled with a pattern. */
  withBacking: boolean;
}

export type OpKind = 'write' | 'zero' | 'compressed';

export interface WriteOp {
  seq: number;
  kind: OpKind;
  offset: number;
  length: number;
  /** flush() after this op; the writer prints "ACK <seq>" when it returns. */
  flushAfter: boolean;
}

const MAX_WRITE = 256 * 1024;

export function planOps(cfg: CrashConfig, runSeed: number, firstSeq: number, count: number): WriteOp[] {
  const rng = makeRng(runSeed);
  const plainEnd = cfg.compressedShare > 0 ? cfg.size / 2 : cfg.size;
  const compressedClusters = (cfg.size - plainEnd) / cfg.clusterSize;
  const ops: WriteOp[] = [];
  for (let seq = firstSeq; seq < firstSeq + count; seq++) {
    const flushAfter = rng.chance(0.3);
    if (rng.chance(cfg.compressedShare) && seq < compressedClusters) {
      ops.push({ seq, kind: 'compressed', offset: plainEnd + seq * cfg.clusterSize, length: cfg.clusterSize, flushAfter });
      continue;
    }
    const length = rng.chance(0.5) ? rng.int(1, 8) * 512 : rng.int(1, MAX_WRITE);
    const aligned = rng.chance(0.5);
    let offset = rng.int(0, plainEnd - length);
    if (aligned) offset -= offset % 512;
    ops.push({ seq, kind: rng.chance(0.1) ? 'zero' : 'write', offset, length, flushAfter });
  }
  return ops;
}

/** The bytes `op` leaves in the guest range it covers. */
export function opData(op: WriteOp, runSeed: number): Uint8Array {
  return op.kind === 'zero' ? new Uint8Array(op.length) : patternBytes(runSeed, op.seq, op.length);
}

/** What the parent learned from a writer's output. */
export interface RunOutcome {
  /** Highest sequence number covered by an ACK (firstSeq - 1: none). */
  lastAck: number;
  /** Highest sequence number the writer started (firstSeq - 1: none). */
  lastStarted: number;
  /** The writer finished its plan and closed the image. */
  done: boolean;
}

/**
 * Checks content read after a kill against the content before the run plus the
 * run's ops: acknowledged ops must be there; each byte of a started but
 * unacknowledged op may hold its old value or the value of any such op. Returns
 * a description of the first byte that fits neither, or null.
 */
export function unexplainedByte(actual: Uint8Array, before: Uint8Array, ops: WriteOp[], runSeed: number, outcome: RunOutcome): string | null {
  const committed = before.slice();
  const candidates: { op: WriteOp; data: Uint8Array }[] = [];
  for (const op of ops) {
    if (op.seq > outcome.lastStarted) break;
    const data = opData(op, runSeed);
    if (op.seq <= outcome.lastAck) committed.set(data, op.offset);
    else candidates.push({ op, data });
  }
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] === committed[i]) continue;
    const explained = candidates.some(({ op, data }) => i >= op.offset && i < op.offset + op.length && data[i - op.offset] === actual[i]);
    if (explained) continue;
    const owner = ops.find((op) => op.seq <= outcome.lastAck && i >= op.offset && i < op.offset + op.length);
    return (
      `byte ${i} is 0x${actual[i]!.toString(16)}, expected 0x${committed[i]!.toString(16)} ` +
      `(last ACK ${outcome.lastAck}, last started ${outcome.lastStarted}` +
      `${owner ? `, written by acknowledged op ${owner.seq} (${owner.kind} at ${owner.offset}+${owner.length})` : ''})`
    );
  }
  return null;
}
