/**
 * Builds a batch module's bytes from plain data: the one step of the JIT
 * that needs nothing but the decoded blocks, so it can run on the vCPU
 * thread or on the compile worker (compiler.ts) alike.
 *
 * Theory of operation. A BlockRequest is a block's translatable prefix as
 * the code cache decoded it, plus the table slots of its same-page chaining
 * targets (translate.ts chainTargets, resolved by the code cache, which owns
 * slot numbers). Block k of the batch is exported as blockExportName(k).
 * Exits to another block of the same batch on the same page tail-call its
 * function directly (when the cache chains there: its target is in `slots`). A target missing from `slots` is not chained (the exit
 * takes the jump path), which is slower but still correct.
 *
 * For the trip to the compile worker a batch is packed into one Int32Array
 * (packBlocks/unpackBlocks): structured-cloning thousands of small objects
 * cost the vCPU thread more than decoding them did. Per block: host, bytes,
 * instruction count, slot-pair count, then INSN_WORDS words per instruction
 * (offset and the Insn fields), then the slot pairs.
 */
import { Insn } from '../isa/index.js';
import { blockExportName, newBatchModule } from './batch-module.js';
import { BLOCK_PARAMS, BLOCK_RESULTS } from './hub.js';
import { translateBlock } from './translate.js';

export interface BlockRequest {
  /** Host offset of the block's first instruction. */
  readonly host: number;
  readonly insns: readonly Insn[];
  readonly offsets: readonly number[];
  /** Offset just past the last instruction. */
  readonly bytes: number;
  /** Chaining targets and their slots, as pairs: [targetHost, slot, targetHost, slot, …]. */
  readonly slots: readonly number[];
}

/** Where the hart's state block is, which translated code addresses directly (its TLB_SET word locates the TLB). */
export interface BatchTarget {
  readonly stateBase: number;
}

export function buildBatch(target: BatchTarget, blocks: readonly BlockRequest[]): Uint8Array {
  const { builder, fns } = newBatchModule(target.stateBase);
  const funcs = blocks.map(() => builder.func(BLOCK_PARAMS, BLOCK_RESULTS));
  const byHost = new Map(blocks.map((b, k) => [b.host, funcs[k]!.index]));
  blocks.forEach((b, k) => {
    const slots = new Map<number, number>();
    for (let i = 0; i < b.slots.length; i += 2) slots.set(b.slots[i]!, b.slots[i + 1]!);
    const ctx = {
      ...target,
      host: b.host,
      slotFor: (host: number) => slots.get(host),
      functionFor: (host: number) => (slots.has(host) ? byHost.get(host) : undefined),
    };
    translateBlock(funcs[k]!.code, fns, ctx, b.insns, b.offsets, b.bytes);
    builder.exportFunction(blockExportName(k), funcs[k]!.index);
  });
  return builder.bytes();
}

const INSN_WORDS = 10;

export function packBlocks(blocks: readonly BlockRequest[]): Int32Array {
  let words = 0;
  for (const b of blocks) words += 4 + b.insns.length * INSN_WORDS + b.slots.length;
  const out = new Int32Array(words);
  let w = 0;
  for (const b of blocks) {
    out[w++] = b.host;
    out[w++] = b.bytes;
    out[w++] = b.insns.length;
    out[w++] = b.slots.length / 2;
    b.insns.forEach((d, i) => {
      out.set([b.offsets[i]!, d.op, d.rd, d.rs1, d.rs2, d.rs3, d.imm, d.rm, d.len, d.raw], w);
      w += INSN_WORDS;
    });
    out.set(b.slots, w);
    w += b.slots.length;
  }
  return out;
}

export function unpackBlocks(packed: Int32Array): BlockRequest[] {
  const blocks: BlockRequest[] = [];
  let w = 0;
  while (w < packed.length) {
    const host = packed[w++]! >>> 0;
    const bytes = packed[w++]!;
    const n = packed[w++]!;
    const pairs = packed[w++]!;
    const insns: Insn[] = [];
    const offsets: number[] = [];
    for (let i = 0; i < n; i++, w += INSN_WORDS) {
      const d = new Insn();
      offsets.push(packed[w]!);
      d.op = packed[w + 1]!;
      d.rd = packed[w + 2]!;
      d.rs1 = packed[w + 3]!;
      d.rs2 = packed[w + 4]!;
      d.rs3 = packed[w + 5]!;
      d.imm = packed[w + 6]!;
      d.rm = packed[w + 7]!;
      d.len = packed[w + 8]!;
      d.raw = packed[w + 9]! >>> 0;
      insns.push(d);
    }
    const slots = Array.from(packed.subarray(w, w + 2 * pairs), (v) => v >>> 0);
    w += 2 * pairs;
    blocks.push({ host, insns, offsets, bytes, slots });
  }
  return blocks;
}
