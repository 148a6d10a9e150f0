/**
 * The basic-block decoder shared by the engines: from a start pc, decode
 * instructions until one that ends a block (a branch or jump, a CSR or system
 * instruction, fence.i, an illegal encoding: table.ts endsBlock), the end of
 * the 4 KiB page, or a cap of instructions.
 *
 * Limits: a block never holds an instruction that straddles the page end (a
 * 4-byte instruction at page offset 0xffe); when the very first instruction
 * does, the block is empty and the engine runs that one instruction on its own
 * slow path (the interpreter's step), which fetches both pages. Decoding never
 * faults: the caller has translated the page (fetchHost) before it asks.
 */
import { decode, Insn } from './decode.js';
import { endsBlock } from './table.js';

export const MAX_BLOCK_INSNS = 64;
const PAGE = 0x1000;

export interface DecodedBlock {
  /** Guest-virtual pc of the first instruction, as halves. */
  readonly pcLo: number;
  readonly pcHi: number;
  readonly insns: Insn[];
  /** Byte offset of each instruction from pcLo (the block stays within one page, so no carry into pcHi). */
  readonly offsets: number[];
  /** Bytes covered: the pc after the last instruction is pc + bytes. */
  readonly bytes: number;
}

/**
 * Decodes a block at pc. `fetch16(offset)` returns the 16-bit parcel at
 * pc + offset; it is only asked for offsets inside pc's page.
 */
export function decodeBlock(
  pcLo: number,
  pcHi: number,
  fetch16: (offset: number) => number,
  maxInsns: number = MAX_BLOCK_INSNS,
): DecodedBlock {
  const room = PAGE - (pcLo & (PAGE - 1));
  const insns: Insn[] = [];
  const offsets: number[] = [];
  let offset = 0;
  while (insns.length < maxInsns && offset + 2 <= room) {
    const low = fetch16(offset) & 0xffff;
    let word = low;
    if ((low & 3) === 3) {
      if (offset + 4 > room) break;
      word = (low | (fetch16(offset + 2) << 16)) >>> 0;
    }
    const insn = decode(word);
    insns.push(insn);
    offsets.push(offset);
    offset += insn.len;
    if (endsBlock(insn.op)) break;
  }
  return { pcLo, pcHi, insns, offsets, bytes: offset };
}
