/**
 * The encoder: the inverse of the decoder for 32-bit instructions. From an
 * opcode number and the decoded form's fields (rd, rs1, rs2, rs3, imm, rm)
 * it builds the instruction word from the table's match bits and immediate
 * format. Fields the instruction does not have are ignored; rm is the FP
 * rounding mode for instructions that take one, aq/rl for atomics. Used by
 * the random-instruction generators (differential tests) and by tests that
 * need a specific encoding.
 */
import { FIELD, FIELDS_OF, IMM, SPECS } from './table.js';

export interface InsnFields {
  rd?: number;
  rs1?: number;
  rs2?: number;
  rs3?: number;
  imm?: number;
  rm?: number;
}

function immBits(format: number, imm: number): number {
  switch (format) {
    case IMM.I:
    case IMM.CSR:
    case IMM.FENCE:
    case IMM.SH5:
    case IMM.SH6:
      return (imm & 0xfff) << 20;
    case IMM.S:
      return (((imm >> 5) & 0x7f) << 25) | ((imm & 0x1f) << 7);
    case IMM.B:
      return (((imm >> 12) & 1) << 31) | (((imm >> 5) & 0x3f) << 25) | (((imm >> 1) & 0xf) << 8) | (((imm >> 11) & 1) << 7);
    case IMM.U:
      return imm & 0xfffff000;
    case IMM.J:
      return (((imm >> 20) & 1) << 31) | (((imm >> 1) & 0x3ff) << 21) | (((imm >> 11) & 1) << 20) | (((imm >> 12) & 0xff) << 12);
    default:
      return 0;
  }
}

/** The 32-bit word of opcode `op` with the given fields (unsigned). */
export function encode(op: number, f: InsnFields): number {
  const spec = SPECS[op];
  if (!spec) throw new RangeError(`no instruction with opcode number ${op}`);
  const fields = FIELDS_OF[op]!;
  let w = 0;
  if (fields & FIELD.RD) w |= ((f.rd ?? 0) & 31) << 7;
  if (fields & FIELD.RS1) w |= ((f.rs1 ?? 0) & 31) << 15;
  if (fields & FIELD.RS2) w |= ((f.rs2 ?? 0) & 31) << 20;
  if (fields & FIELD.RS3) w |= ((f.rs3 ?? 0) & 31) << 27;
  if (fields & FIELD.RM) w |= ((f.rm ?? 7) & 7) << 12;
  if (fields & FIELD.AQRL) w |= ((f.rm ?? 0) & 3) << 25;
  w |= immBits(spec.imm, f.imm ?? 0);
  return ((w & ~spec.mask) | spec.match) >>> 0;
}
