/**
 * The decoder: a 32-bit fetch word → the decoded form (Insn), the compact
 * intermediate form both engines consume.
 *
 * Theory of operation. If the low two bits of the word are not 11 it is a
 * 16-bit compressed instruction: compressed.ts expands it to its 32-bit
 * equivalent and the decoded form remembers length 2. A 32-bit word is looked
 * up in a 256-way index keyed by bits 6:2 (major opcode) and 14:12 (funct3);
 * each bucket lists the table entries that can match, most specific mask
 * first, so a lookup compares a handful of mask/match pairs. No encoding
 * throws: anything unknown or reserved (including FP rounding modes 5 and 6
 * given statically) decodes to OP_ILLEGAL with raw kept for the trap value.
 *
 * Decoded fields: op (opcode number, table.ts), rd/rs1/rs2/rs3 (register
 * numbers; a field the instruction does not name is 0, so stores and
 * branches have rd = 0), imm (sign-extended 32-bit immediate; the CSR number
 * for CSR instructions, whose rs1 then holds the register or the 5-bit uimm;
 * the fm/pred/succ bits for fence), rm (funct3: the FP rounding mode, or
 * aq/rl (bits 26:25) for atomics), len (2 or 4), raw (the original 16- or
 * 32-bit encoding, unsigned).
 */
import { FIELD, FIELDS_OF, IMM, OP_ILLEGAL, SPECS } from './table.js';
import { expandCompressed } from './compressed.js';

export class Insn {
  op = OP_ILLEGAL;
  rd = 0;
  rs1 = 0;
  rs2 = 0;
  rs3 = 0;
  imm = 0;
  rm = 0;
  len = 4;
  raw = 0;
}

const BUCKETS: number[][] = Array.from({ length: 256 }, () => []);

function popcount(v: number): number {
  let n = 0;
  for (let x = v >>> 0; x !== 0; x >>>= 1) n += x & 1;
  return n;
}

function buildIndex(): void {
  const keyBits = 0x707c;
  SPECS.forEach((spec, op) => {
    if (!spec) return;
    for (let key = 0; key < 256; key++) {
      const bits = ((key >>> 3) << 2) | ((key & 7) << 12);
      if (((bits ^ spec.match) & spec.mask & keyBits) === 0) BUCKETS[key]!.push(op);
    }
  });
  for (const bucket of BUCKETS) bucket.sort((a, b) => popcount(SPECS[b]!.mask) - popcount(SPECS[a]!.mask));
}
buildIndex();

const MASKS = new Uint32Array(SPECS.map((s) => (s ? s.mask : 0)));
const MATCHES = new Uint32Array(SPECS.map((s) => (s ? s.match : 0)));
const IMM_FORMATS = new Uint8Array(SPECS.map((s) => (s ? s.imm : 0)));

/** The opcode number of a 32-bit instruction word, or OP_ILLEGAL. */
function lookupOpcode(word: number): number {
  if ((word & 3) !== 3 || (word & 0x1c) === 0x1c) return OP_ILLEGAL;
  const bucket = BUCKETS[((word >>> 2) & 0x1f) << 3 | ((word >>> 12) & 7)]!;
  for (let i = 0; i < bucket.length; i++) {
    const op = bucket[i]!;
    if (((word & MASKS[op]!) >>> 0) === MATCHES[op]) return op;
  }
  return OP_ILLEGAL;
}

function immediate(format: number, w: number): number {
  switch (format) {
    case IMM.I:
      return w >> 20;
    case IMM.S:
      return ((w >> 25) << 5) | ((w >>> 7) & 0x1f);
    case IMM.B:
      return ((w >> 31) << 12) | (((w >>> 7) & 1) << 11) | (((w >>> 25) & 0x3f) << 5) | (((w >>> 8) & 0xf) << 1);
    case IMM.U:
      return w & 0xfffff000;
    case IMM.J:
      return ((w >> 31) << 20) | (((w >>> 12) & 0xff) << 12) | (((w >>> 20) & 1) << 11) | (((w >>> 21) & 0x3ff) << 1);
    case IMM.SH6:
      return (w >>> 20) & 0x3f;
    case IMM.SH5:
      return (w >>> 20) & 0x1f;
    case IMM.CSR:
    case IMM.FENCE:
      return w >>> 20;
    default:
      return 0;
  }
}

/**
 * Decodes the instruction whose first bytes are `word` (little-endian: the
 * first parcel in the low 16 bits; the high 16 bits are ignored for a
 * compressed instruction) into `out`, and returns `out`.
 */
export function decode(word: number, out: Insn = new Insn()): Insn {
  let w = word >>> 0;
  if ((w & 3) !== 3) {
    out.len = 2;
    out.raw = w & 0xffff;
    w = expandCompressed(w);
  } else {
    out.len = 4;
    out.raw = w;
  }
  let op = lookupOpcode(w);
  const fields = FIELDS_OF[op]!;
  const rm = (w >>> 12) & 7;
  if ((fields & FIELD.RM) !== 0 && (rm === 5 || rm === 6)) op = OP_ILLEGAL;
  out.op = op;
  if (op === OP_ILLEGAL) {
    out.rd = out.rs1 = out.rs2 = out.rs3 = out.imm = out.rm = 0;
    return out;
  }
  out.rd = (fields & FIELD.RD) !== 0 ? (w >>> 7) & 0x1f : 0;
  out.rs1 = (fields & FIELD.RS1) !== 0 ? (w >>> 15) & 0x1f : 0;
  out.rs2 = (fields & FIELD.RS2) !== 0 ? (w >>> 20) & 0x1f : 0;
  out.rs3 = (fields & FIELD.RS3) !== 0 ? w >>> 27 : 0;
  out.rm = (fields & FIELD.AQRL) !== 0 ? (w >>> 25) & 3 : rm;
  out.imm = immediate(IMM_FORMATS[op]!, w);
  return out;
}
