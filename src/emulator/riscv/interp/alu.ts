/**
 * Interpreter handlers for the integer instructions that touch only
 * registers and pc: RV64I arithmetic, M, Zba, Zbb, Zbs, branches and jumps.
 * 64-bit values are (lo, hi) int32 halves (int64.ts). Jumps clear bit 0 of
 * jalr targets; with the C extension every target is 2-byte aligned, so no
 * instruction-address-misaligned trap can arise.
 */
import type { Insn } from '../isa/decode.js';
import type { Mnemonic } from '../isa/table.js';
import { type Core, type Handler, JUMP, NEXT } from './core.js';
import {
  R, add64, bswap32, ctz32, divRem64, divRemU64, divRemUW, divRemW, lessThan, lessThanUnsigned,
  mul64, mulh64, mulhsu64, mulhu64, orcb32, popcount32, rol64, sll64, sra64, srl64, sub64,
} from './int64.js';

type Binary = (alo: number, ahi: number, blo: number, bhi: number) => void;

/** rd = f(rs1, rs2) for a function leaving its result in R. */
function reg(f: Binary): Handler {
  return (c, d) => {
    f(c.lo(d.rs1), c.hi(d.rs1), c.lo(d.rs2), c.hi(d.rs2));
    c.set(d.rd, R.lo, R.hi);
    return NEXT;
  };
}

/** rd = f(rs1, imm). */
function imm(f: Binary): Handler {
  return (c, d) => {
    f(c.lo(d.rs1), c.hi(d.rs1), d.imm, d.imm >> 31);
    c.set(d.rd, R.lo, R.hi);
    return NEXT;
  };
}

/** rd = sext32(f(rs1.lo, rs2.lo)). */
function word(f: (a: number, b: number) => number): Handler {
  return (c, d) => {
    c.setW(d.rd, f(c.lo(d.rs1), c.lo(d.rs2)));
    return NEXT;
  };
}

/** rd = sext32(f(rs1.lo, imm)). */
function wordImm(f: (a: number, b: number) => number): Handler {
  return (c, d) => {
    c.setW(d.rd, f(c.lo(d.rs1), d.imm));
    return NEXT;
  };
}

/** rd = f(rs1) for a unary function leaving its result in R. */
function unary(f: (lo: number, hi: number) => void): Handler {
  return (c, d) => {
    f(c.lo(d.rs1), c.hi(d.rs1));
    c.set(d.rd, R.lo, R.hi);
    return NEXT;
  };
}

/** Ends a branch: the next pc is pc + imm when taken, else pc + len. */
function branchTo(c: Core, d: Insn, taken: boolean): number {
  const off = taken ? d.imm : d.len;
  add64(c.pcLo, c.pcHi, off, off >> 31);
  c.nextLo = R.lo;
  c.nextHi = R.hi;
  return JUMP;
}

const and64: Binary = (alo, ahi, blo, bhi) => { R.lo = alo & blo; R.hi = ahi & bhi; };
const or64: Binary = (alo, ahi, blo, bhi) => { R.lo = alo | blo; R.hi = ahi | bhi; };
const xor64: Binary = (alo, ahi, blo, bhi) => { R.lo = alo ^ blo; R.hi = ahi ^ bhi; };
const slt: Binary = (alo, ahi, blo, bhi) => { R.lo = lessThan(alo, ahi, blo, bhi) ? 1 : 0; R.hi = 0; };
const sltu: Binary = (alo, ahi, blo, bhi) => { R.lo = lessThanUnsigned(alo, ahi, blo, bhi) ? 1 : 0; R.hi = 0; };
const shiftBy = (f: (lo: number, hi: number, s: number) => void): Binary => (alo, ahi, blo) => f(alo, ahi, blo & 63);

function shAdd(n: number, uw: boolean): Binary {
  return (alo, ahi, blo, bhi) => {
    sll64(alo, uw ? 0 : ahi, n);
    add64(R.lo, R.hi, blo, bhi);
  };
}

function pick(useA: (alo: number, ahi: number, blo: number, bhi: number) => boolean): Binary {
  return (alo, ahi, blo, bhi) => {
    const a = useA(alo, ahi, blo, bhi);
    R.lo = a ? alo : blo;
    R.hi = a ? ahi : bhi;
  };
}

function clz64(lo: number, hi: number): void {
  R.lo = hi !== 0 ? Math.clz32(hi) : 32 + Math.clz32(lo);
  R.hi = 0;
}

function ctz64(lo: number, hi: number): void {
  R.lo = lo !== 0 ? ctz32(lo) : 32 + ctz32(hi);
  R.hi = 0;
}

function bitOp(f: (lo: number, hi: number, mlo: number, mhi: number) => void): Binary {
  return (alo, ahi, blo) => {
    const i = blo & 63;
    f(alo, ahi, i < 32 ? 1 << i : 0, i >= 32 ? 1 << (i - 32) : 0);
  };
}

function rotateRight(lo: number, hi: number, s: number): void {
  rol64(lo, hi, (64 - (s & 63)) & 63);
}

function rotate32(v: number, left: number): number {
  const s = left & 31;
  return s === 0 ? v : (v << s) | (v >>> (32 - s));
}

export const ALU_HANDLERS: Partial<Record<Mnemonic, Handler>> = {
  lui: (c, d) => { c.set(d.rd, d.imm, d.imm >> 31); return NEXT; },
  auipc: (c, d) => { add64(c.pcLo, c.pcHi, d.imm, d.imm >> 31); c.set(d.rd, R.lo, R.hi); return NEXT; },
  jal: (c, d) => {
    add64(c.pcLo, c.pcHi, d.imm, d.imm >> 31);
    c.nextLo = R.lo;
    c.nextHi = R.hi;
    add64(c.pcLo, c.pcHi, d.len, 0);
    c.set(d.rd, R.lo, R.hi);
    return JUMP;
  },
  jalr: (c, d) => {
    add64(c.lo(d.rs1), c.hi(d.rs1), d.imm, d.imm >> 31);
    c.nextLo = R.lo & ~1;
    c.nextHi = R.hi;
    add64(c.pcLo, c.pcHi, d.len, 0);
    c.set(d.rd, R.lo, R.hi);
    return JUMP;
  },
  // The most frequent instructions get handlers of their own (no inner call through a shared closure).
  beq: (c, d) => branchTo(c, d, c.lo(d.rs1) === c.lo(d.rs2) && c.hi(d.rs1) === c.hi(d.rs2)),
  bne: (c, d) => branchTo(c, d, c.lo(d.rs1) !== c.lo(d.rs2) || c.hi(d.rs1) !== c.hi(d.rs2)),
  blt: (c, d) => branchTo(c, d, lessThan(c.lo(d.rs1), c.hi(d.rs1), c.lo(d.rs2), c.hi(d.rs2))),
  bge: (c, d) => branchTo(c, d, !lessThan(c.lo(d.rs1), c.hi(d.rs1), c.lo(d.rs2), c.hi(d.rs2))),
  bltu: (c, d) => branchTo(c, d, lessThanUnsigned(c.lo(d.rs1), c.hi(d.rs1), c.lo(d.rs2), c.hi(d.rs2))),
  bgeu: (c, d) => branchTo(c, d, !lessThanUnsigned(c.lo(d.rs1), c.hi(d.rs1), c.lo(d.rs2), c.hi(d.rs2))),
  addi: (c, d) => {
    add64(c.lo(d.rs1), c.hi(d.rs1), d.imm, d.imm >> 31);
    c.set(d.rd, R.lo, R.hi);
    return NEXT;
  },
  add: (c, d) => {
    add64(c.lo(d.rs1), c.hi(d.rs1), c.lo(d.rs2), c.hi(d.rs2));
    c.set(d.rd, R.lo, R.hi);
    return NEXT;
  },
  addiw: (c, d) => {
    c.setW(d.rd, c.lo(d.rs1) + d.imm);
    return NEXT;
  },
  addw: (c, d) => {
    c.setW(d.rd, c.lo(d.rs1) + c.lo(d.rs2));
    return NEXT;
  },
  andi: (c, d) => {
    c.set(d.rd, c.lo(d.rs1) & d.imm, c.hi(d.rs1) & (d.imm >> 31));
    return NEXT;
  },
  slli: (c, d) => {
    sll64(c.lo(d.rs1), c.hi(d.rs1), d.imm);
    c.set(d.rd, R.lo, R.hi);
    return NEXT;
  },
  srli: (c, d) => {
    srl64(c.lo(d.rs1), c.hi(d.rs1), d.imm);
    c.set(d.rd, R.lo, R.hi);
    return NEXT;
  },
  slti: imm(slt),
  sltiu: imm(sltu),
  xori: imm(xor64),
  ori: imm(or64),
  srai: imm(shiftBy(sra64)),
  sub: reg(sub64),
  sll: reg(shiftBy(sll64)),
  slt: reg(slt),
  sltu: reg(sltu),
  xor: reg(xor64),
  srl: reg(shiftBy(srl64)),
  sra: reg(shiftBy(sra64)),
  or: reg(or64),
  and: reg(and64),
  slliw: wordImm((a, s) => a << s),
  srliw: wordImm((a, s) => a >>> s),
  sraiw: wordImm((a, s) => a >> s),
  subw: word((a, b) => a - b),
  sllw: word((a, b) => a << (b & 31)),
  srlw: word((a, b) => a >>> (b & 31)),
  sraw: word((a, b) => a >> (b & 31)),

  mul: reg(mul64),
  mulh: reg(mulh64),
  mulhsu: reg(mulhsu64),
  mulhu: reg(mulhu64),
  div: reg((alo, ahi, blo, bhi) => divRem64(alo, ahi, blo, bhi, false)),
  divu: reg((alo, ahi, blo, bhi) => divRemU64(alo, ahi, blo, bhi, false)),
  rem: reg((alo, ahi, blo, bhi) => divRem64(alo, ahi, blo, bhi, true)),
  remu: reg((alo, ahi, blo, bhi) => divRemU64(alo, ahi, blo, bhi, true)),
  mulw: word(Math.imul),
  divw: word((a, b) => divRemW(a, b, false)),
  divuw: word((a, b) => divRemUW(a, b, false)),
  remw: word((a, b) => divRemW(a, b, true)),
  remuw: word((a, b) => divRemUW(a, b, true)),

  'add.uw': reg(shAdd(0, true)),
  sh1add: reg(shAdd(1, false)),
  sh2add: reg(shAdd(2, false)),
  sh3add: reg(shAdd(3, false)),
  'sh1add.uw': reg(shAdd(1, true)),
  'sh2add.uw': reg(shAdd(2, true)),
  'sh3add.uw': reg(shAdd(3, true)),
  'slli.uw': imm((alo, _ahi, s) => sll64(alo, 0, s)),

  andn: reg((alo, ahi, blo, bhi) => and64(alo, ahi, ~blo, ~bhi)),
  orn: reg((alo, ahi, blo, bhi) => or64(alo, ahi, ~blo, ~bhi)),
  xnor: reg((alo, ahi, blo, bhi) => xor64(alo, ahi, ~blo, ~bhi)),
  clz: unary(clz64),
  ctz: unary(ctz64),
  cpop: unary((lo, hi) => { R.lo = popcount32(lo) + popcount32(hi); R.hi = 0; }),
  clzw: unary((lo) => { R.lo = Math.clz32(lo); R.hi = 0; }),
  ctzw: unary((lo) => { R.lo = ctz32(lo); R.hi = 0; }),
  cpopw: unary((lo) => { R.lo = popcount32(lo); R.hi = 0; }),
  max: reg(pick((alo, ahi, blo, bhi) => !lessThan(alo, ahi, blo, bhi))),
  maxu: reg(pick((alo, ahi, blo, bhi) => !lessThanUnsigned(alo, ahi, blo, bhi))),
  min: reg(pick(lessThan)),
  minu: reg(pick(lessThanUnsigned)),
  'sext.b': unary((lo) => { R.lo = (lo << 24) >> 24; R.hi = R.lo >> 31; }),
  'sext.h': unary((lo) => { R.lo = (lo << 16) >> 16; R.hi = R.lo >> 31; }),
  'zext.h': unary((lo) => { R.lo = lo & 0xffff; R.hi = 0; }),
  rol: reg((alo, ahi, blo) => rol64(alo, ahi, blo & 63)),
  ror: reg((alo, ahi, blo) => rotateRight(alo, ahi, blo)),
  rori: imm((alo, ahi, s) => rotateRight(alo, ahi, s)),
  rolw: word((a, b) => rotate32(a, b)),
  rorw: word((a, b) => rotate32(a, 32 - (b & 31))),
  roriw: wordImm((a, s) => rotate32(a, 32 - s)),
  'orc.b': unary((lo, hi) => { R.lo = orcb32(lo) | 0; R.hi = orcb32(hi) | 0; }),
  rev8: unary((lo, hi) => { R.lo = bswap32(hi) | 0; R.hi = bswap32(lo) | 0; }),

  bclr: reg(bitOp((lo, hi, mlo, mhi) => and64(lo, hi, ~mlo, ~mhi))),
  bclri: imm(bitOp((lo, hi, mlo, mhi) => and64(lo, hi, ~mlo, ~mhi))),
  bset: reg(bitOp(or64)),
  bseti: imm(bitOp(or64)),
  binv: reg(bitOp(xor64)),
  binvi: imm(bitOp(xor64)),
  bext: reg(bitOp((lo, hi, mlo, mhi) => { R.lo = (lo & mlo) !== 0 || (hi & mhi) !== 0 ? 1 : 0; R.hi = 0; })),
  bexti: imm(bitOp((lo, hi, mlo, mhi) => { R.lo = (lo & mlo) !== 0 || (hi & mhi) !== 0 ? 1 : 0; R.hi = 0; })),
};
