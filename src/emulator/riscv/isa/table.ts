/**
 * The RISC-V instruction table: the one list of every instruction tsemu runs
 * (RV64I, M, A, F, D, Zicsr, Zifencei, Zba, Zbb, Zbs; C expands to these).
 * The decoder, the disassembler, the interpreter, the JIT's lowering and the
 * random-instruction tests all read it, in the spirit of v86's generated
 * decoder.
 *
 * Each entry is keyed by its mnemonic in the spec's spelling ('fadd.d') and
 * holds: the extension, a kind (what an engine must do with it: plain ALU
 * work, a memory access, a control transfer, a system call …), the immediate
 * format the decoder extracts, the operand syntax the disassembler prints,
 * and mask/match: a 32-bit word w is this instruction when (w & mask) === match.
 *
 * Opcode numbers are the entries' positions, starting at 1 (0 is 'illegal');
 * the order below is fixed, so the numbers are stable. Engines refer to them
 * through OP ('OP.add', "OP['fadd.d']"), which the type checker verifies.
 *
 * Operand syntax tokens: xd xs1 xs2 (integer registers), fd fs1 fs2 fs3 (FP
 * registers), imm, off(xs1) (load/store address), target (pc-relative),
 * shamt, csr, uimm (CSR immediate in the rs1 field), rm (FP rounding mode,
 * printed only when not dynamic), fence (pred, succ), (xs1) for atomics.
 */

/** How the decoder extracts `imm` (see decode.ts). */
export const IMM = {
  NONE: 0,
  I: 1,
  S: 2,
  B: 3,
  U: 4,
  J: 5,
  /** 6-bit shift amount (bits 25:20). */
  SH6: 6,
  /** 5-bit shift amount (bits 24:20). */
  SH5: 7,
  /** CSR number (bits 31:20, unsigned); the rs1 field holds a register or the 5-bit uimm. */
  CSR: 8,
  /** fence: fm/pred/succ bits 31:20, unsigned. */
  FENCE: 9,
} as const;
export type ImmFormat = (typeof IMM)[keyof typeof IMM];

/** What an engine has to do with an instruction, in broad strokes. */
export type Kind =
  | 'alu' // integer register arithmetic, lui, auipc
  | 'branch' // conditional, pc-relative
  | 'jump' // jal, jalr
  | 'load'
  | 'store'
  | 'fload' // flw, fld
  | 'fstore' // fsw, fsd
  | 'atomic' // lr, sc, amo*
  | 'fp' // FP arithmetic, compares, conversions, moves (H3's executor)
  | 'csr'
  | 'system' // ecall, ebreak, mret, sret, wfi, sfence.vma
  | 'fence' // fence (a no-op for one hart with sequentially consistent memory)
  | 'fencei';

export type Extension = 'I' | 'M' | 'A' | 'F' | 'D' | 'Zicsr' | 'Zifencei' | 'Zba' | 'Zbb' | 'Zbs';

export interface InsnSpec {
  readonly ext: Extension;
  readonly kind: Kind;
  readonly imm: ImmFormat;
  readonly operands: string;
  readonly mask: number;
  readonly match: number;
}

type Row = readonly [ext: Extension, kind: Kind, imm: ImmFormat, operands: string, mask: number, match: number];

const { NONE, I, S, B, U, J, SH6, SH5, CSR, FENCE } = IMM;

// Common masks.
const OPC = 0x0000007f; // opcode
const F3 = 0x0000707f; // opcode + funct3
const F7 = 0xfe00707f; // opcode + funct3 + funct7
const F6 = 0xfc00707f; // opcode + funct3 + funct6 (RV64 immediate shifts)
const F12 = 0xfff0707f; // opcode + funct3 + bits 31:20 (unary ops encoded in rs2)
const ALL = 0xffffffff;
const AMO = 0xf800707f; // opcode + funct3 + funct5 (aq/rl free)
const LR = 0xf9f0707f; // as AMO, with rs2 = 0
const FRM = 0xfe00007f; // opcode + funct7, rm free
const FRM1 = 0xfff0007f; // opcode + funct7 + rs2, rm free
const FMA = 0x0600007f; // opcode + fmt

const R = 'xd,xs1,xs2';
const RI = 'xd,xs1,imm';
const RS = 'xd,xs1,shamt';
const R1 = 'xd,xs1';
const LD = 'xd,off(xs1)';
const ST = 'xs2,off(xs1)';
const BR = 'xs1,xs2,target';
const AM = 'xd,xs2,(xs1)';
const FR = 'fd,fs1,fs2,rm';
const FR2 = 'fd,fs1,fs2';
const FR4 = 'fd,fs1,fs2,fs3,rm';
const FCMP = 'xd,fs1,fs2';

const TABLE = {
  // RV64I
  lui: ['I', 'alu', U, 'xd,imm', OPC, 0x00000037],
  auipc: ['I', 'alu', U, 'xd,imm', OPC, 0x00000017],
  jal: ['I', 'jump', J, 'xd,target', OPC, 0x0000006f],
  jalr: ['I', 'jump', I, 'xd,off(xs1)', F3, 0x00000067],
  beq: ['I', 'branch', B, BR, F3, 0x00000063],
  bne: ['I', 'branch', B, BR, F3, 0x00001063],
  blt: ['I', 'branch', B, BR, F3, 0x00004063],
  bge: ['I', 'branch', B, BR, F3, 0x00005063],
  bltu: ['I', 'branch', B, BR, F3, 0x00006063],
  bgeu: ['I', 'branch', B, BR, F3, 0x00007063],
  lb: ['I', 'load', I, LD, F3, 0x00000003],
  lh: ['I', 'load', I, LD, F3, 0x00001003],
  lw: ['I', 'load', I, LD, F3, 0x00002003],
  ld: ['I', 'load', I, LD, F3, 0x00003003],
  lbu: ['I', 'load', I, LD, F3, 0x00004003],
  lhu: ['I', 'load', I, LD, F3, 0x00005003],
  lwu: ['I', 'load', I, LD, F3, 0x00006003],
  sb: ['I', 'store', S, ST, F3, 0x00000023],
  sh: ['I', 'store', S, ST, F3, 0x00001023],
  sw: ['I', 'store', S, ST, F3, 0x00002023],
  sd: ['I', 'store', S, ST, F3, 0x00003023],
  addi: ['I', 'alu', I, RI, F3, 0x00000013],
  slti: ['I', 'alu', I, RI, F3, 0x00002013],
  sltiu: ['I', 'alu', I, RI, F3, 0x00003013],
  xori: ['I', 'alu', I, RI, F3, 0x00004013],
  ori: ['I', 'alu', I, RI, F3, 0x00006013],
  andi: ['I', 'alu', I, RI, F3, 0x00007013],
  slli: ['I', 'alu', SH6, RS, F6, 0x00001013],
  srli: ['I', 'alu', SH6, RS, F6, 0x00005013],
  srai: ['I', 'alu', SH6, RS, F6, 0x40005013],
  add: ['I', 'alu', NONE, R, F7, 0x00000033],
  sub: ['I', 'alu', NONE, R, F7, 0x40000033],
  sll: ['I', 'alu', NONE, R, F7, 0x00001033],
  slt: ['I', 'alu', NONE, R, F7, 0x00002033],
  sltu: ['I', 'alu', NONE, R, F7, 0x00003033],
  xor: ['I', 'alu', NONE, R, F7, 0x00004033],
  srl: ['I', 'alu', NONE, R, F7, 0x00005033],
  sra: ['I', 'alu', NONE, R, F7, 0x40005033],
  or: ['I', 'alu', NONE, R, F7, 0x00006033],
  and: ['I', 'alu', NONE, R, F7, 0x00007033],
  addiw: ['I', 'alu', I, RI, F3, 0x0000001b],
  slliw: ['I', 'alu', SH5, RS, F7, 0x0000101b],
  srliw: ['I', 'alu', SH5, RS, F7, 0x0000501b],
  sraiw: ['I', 'alu', SH5, RS, F7, 0x4000501b],
  addw: ['I', 'alu', NONE, R, F7, 0x0000003b],
  subw: ['I', 'alu', NONE, R, F7, 0x4000003b],
  sllw: ['I', 'alu', NONE, R, F7, 0x0000103b],
  srlw: ['I', 'alu', NONE, R, F7, 0x0000503b],
  sraw: ['I', 'alu', NONE, R, F7, 0x4000503b],
  fence: ['I', 'fence', FENCE, 'fence', F3, 0x0000000f],
  ecall: ['I', 'system', NONE, '', ALL, 0x00000073],
  ebreak: ['I', 'system', NONE, '', ALL, 0x00100073],
  // Privileged
  sret: ['I', 'system', NONE, '', ALL, 0x10200073],
  mret: ['I', 'system', NONE, '', ALL, 0x30200073],
  wfi: ['I', 'system', NONE, '', ALL, 0x10500073],
  'sfence.vma': ['I', 'system', NONE, 'xs1,xs2', 0xfe007fff, 0x12000073],
  // Zifencei
  'fence.i': ['Zifencei', 'fencei', NONE, '', F3, 0x0000100f],
  // Zicsr
  csrrw: ['Zicsr', 'csr', CSR, 'xd,csr,xs1', F3, 0x00001073],
  csrrs: ['Zicsr', 'csr', CSR, 'xd,csr,xs1', F3, 0x00002073],
  csrrc: ['Zicsr', 'csr', CSR, 'xd,csr,xs1', F3, 0x00003073],
  csrrwi: ['Zicsr', 'csr', CSR, 'xd,csr,uimm', F3, 0x00005073],
  csrrsi: ['Zicsr', 'csr', CSR, 'xd,csr,uimm', F3, 0x00006073],
  csrrci: ['Zicsr', 'csr', CSR, 'xd,csr,uimm', F3, 0x00007073],
  // M
  mul: ['M', 'alu', NONE, R, F7, 0x02000033],
  mulh: ['M', 'alu', NONE, R, F7, 0x02001033],
  mulhsu: ['M', 'alu', NONE, R, F7, 0x02002033],
  mulhu: ['M', 'alu', NONE, R, F7, 0x02003033],
  div: ['M', 'alu', NONE, R, F7, 0x02004033],
  divu: ['M', 'alu', NONE, R, F7, 0x02005033],
  rem: ['M', 'alu', NONE, R, F7, 0x02006033],
  remu: ['M', 'alu', NONE, R, F7, 0x02007033],
  mulw: ['M', 'alu', NONE, R, F7, 0x0200003b],
  divw: ['M', 'alu', NONE, R, F7, 0x0200403b],
  divuw: ['M', 'alu', NONE, R, F7, 0x0200503b],
  remw: ['M', 'alu', NONE, R, F7, 0x0200603b],
  remuw: ['M', 'alu', NONE, R, F7, 0x0200703b],
  // A (rm holds the aq/rl bits)
  'lr.w': ['A', 'atomic', NONE, 'xd,(xs1)', LR, 0x1000202f],
  'sc.w': ['A', 'atomic', NONE, AM, AMO, 0x1800202f],
  'amoswap.w': ['A', 'atomic', NONE, AM, AMO, 0x0800202f],
  'amoadd.w': ['A', 'atomic', NONE, AM, AMO, 0x0000202f],
  'amoxor.w': ['A', 'atomic', NONE, AM, AMO, 0x2000202f],
  'amoand.w': ['A', 'atomic', NONE, AM, AMO, 0x6000202f],
  'amoor.w': ['A', 'atomic', NONE, AM, AMO, 0x4000202f],
  'amomin.w': ['A', 'atomic', NONE, AM, AMO, 0x8000202f],
  'amomax.w': ['A', 'atomic', NONE, AM, AMO, 0xa000202f],
  'amominu.w': ['A', 'atomic', NONE, AM, AMO, 0xc000202f],
  'amomaxu.w': ['A', 'atomic', NONE, AM, AMO, 0xe000202f],
  'lr.d': ['A', 'atomic', NONE, 'xd,(xs1)', LR, 0x1000302f],
  'sc.d': ['A', 'atomic', NONE, AM, AMO, 0x1800302f],
  'amoswap.d': ['A', 'atomic', NONE, AM, AMO, 0x0800302f],
  'amoadd.d': ['A', 'atomic', NONE, AM, AMO, 0x0000302f],
  'amoxor.d': ['A', 'atomic', NONE, AM, AMO, 0x2000302f],
  'amoand.d': ['A', 'atomic', NONE, AM, AMO, 0x6000302f],
  'amoor.d': ['A', 'atomic', NONE, AM, AMO, 0x4000302f],
  'amomin.d': ['A', 'atomic', NONE, AM, AMO, 0x8000302f],
  'amomax.d': ['A', 'atomic', NONE, AM, AMO, 0xa000302f],
  'amominu.d': ['A', 'atomic', NONE, AM, AMO, 0xc000302f],
  'amomaxu.d': ['A', 'atomic', NONE, AM, AMO, 0xe000302f],
  // F
  flw: ['F', 'fload', I, 'fd,off(xs1)', F3, 0x00002007],
  fsw: ['F', 'fstore', S, 'fs2,off(xs1)', F3, 0x00002027],
  'fmadd.s': ['F', 'fp', NONE, FR4, FMA, 0x00000043],
  'fmsub.s': ['F', 'fp', NONE, FR4, FMA, 0x00000047],
  'fnmsub.s': ['F', 'fp', NONE, FR4, FMA, 0x0000004b],
  'fnmadd.s': ['F', 'fp', NONE, FR4, FMA, 0x0000004f],
  'fadd.s': ['F', 'fp', NONE, FR, FRM, 0x00000053],
  'fsub.s': ['F', 'fp', NONE, FR, FRM, 0x08000053],
  'fmul.s': ['F', 'fp', NONE, FR, FRM, 0x10000053],
  'fdiv.s': ['F', 'fp', NONE, FR, FRM, 0x18000053],
  'fsqrt.s': ['F', 'fp', NONE, 'fd,fs1,rm', FRM1, 0x58000053],
  'fsgnj.s': ['F', 'fp', NONE, FR2, F7, 0x20000053],
  'fsgnjn.s': ['F', 'fp', NONE, FR2, F7, 0x20001053],
  'fsgnjx.s': ['F', 'fp', NONE, FR2, F7, 0x20002053],
  'fmin.s': ['F', 'fp', NONE, FR2, F7, 0x28000053],
  'fmax.s': ['F', 'fp', NONE, FR2, F7, 0x28001053],
  'fcvt.w.s': ['F', 'fp', NONE, 'xd,fs1,rm', FRM1, 0xc0000053],
  'fcvt.wu.s': ['F', 'fp', NONE, 'xd,fs1,rm', FRM1, 0xc0100053],
  'fcvt.l.s': ['F', 'fp', NONE, 'xd,fs1,rm', FRM1, 0xc0200053],
  'fcvt.lu.s': ['F', 'fp', NONE, 'xd,fs1,rm', FRM1, 0xc0300053],
  'fmv.x.w': ['F', 'fp', NONE, 'xd,fs1', F12, 0xe0000053],
  'fclass.s': ['F', 'fp', NONE, 'xd,fs1', F12, 0xe0001053],
  'feq.s': ['F', 'fp', NONE, FCMP, F7, 0xa0002053],
  'flt.s': ['F', 'fp', NONE, FCMP, F7, 0xa0001053],
  'fle.s': ['F', 'fp', NONE, FCMP, F7, 0xa0000053],
  'fcvt.s.w': ['F', 'fp', NONE, 'fd,xs1,rm', FRM1, 0xd0000053],
  'fcvt.s.wu': ['F', 'fp', NONE, 'fd,xs1,rm', FRM1, 0xd0100053],
  'fcvt.s.l': ['F', 'fp', NONE, 'fd,xs1,rm', FRM1, 0xd0200053],
  'fcvt.s.lu': ['F', 'fp', NONE, 'fd,xs1,rm', FRM1, 0xd0300053],
  'fmv.w.x': ['F', 'fp', NONE, 'fd,xs1', F12, 0xf0000053],
  // D
  fld: ['D', 'fload', I, 'fd,off(xs1)', F3, 0x00003007],
  fsd: ['D', 'fstore', S, 'fs2,off(xs1)', F3, 0x00003027],
  'fmadd.d': ['D', 'fp', NONE, FR4, FMA, 0x02000043],
  'fmsub.d': ['D', 'fp', NONE, FR4, FMA, 0x02000047],
  'fnmsub.d': ['D', 'fp', NONE, FR4, FMA, 0x0200004b],
  'fnmadd.d': ['D', 'fp', NONE, FR4, FMA, 0x0200004f],
  'fadd.d': ['D', 'fp', NONE, FR, FRM, 0x02000053],
  'fsub.d': ['D', 'fp', NONE, FR, FRM, 0x0a000053],
  'fmul.d': ['D', 'fp', NONE, FR, FRM, 0x12000053],
  'fdiv.d': ['D', 'fp', NONE, FR, FRM, 0x1a000053],
  'fsqrt.d': ['D', 'fp', NONE, 'fd,fs1,rm', FRM1, 0x5a000053],
  'fsgnj.d': ['D', 'fp', NONE, FR2, F7, 0x22000053],
  'fsgnjn.d': ['D', 'fp', NONE, FR2, F7, 0x22001053],
  'fsgnjx.d': ['D', 'fp', NONE, FR2, F7, 0x22002053],
  'fmin.d': ['D', 'fp', NONE, FR2, F7, 0x2a000053],
  'fmax.d': ['D', 'fp', NONE, FR2, F7, 0x2a001053],
  'fcvt.s.d': ['D', 'fp', NONE, 'fd,fs1,rm', FRM1, 0x40100053],
  'fcvt.d.s': ['D', 'fp', NONE, 'fd,fs1', FRM1, 0x42000053],
  'feq.d': ['D', 'fp', NONE, FCMP, F7, 0xa2002053],
  'flt.d': ['D', 'fp', NONE, FCMP, F7, 0xa2001053],
  'fle.d': ['D', 'fp', NONE, FCMP, F7, 0xa2000053],
  'fclass.d': ['D', 'fp', NONE, 'xd,fs1', F12, 0xe2001053],
  'fcvt.w.d': ['D', 'fp', NONE, 'xd,fs1,rm', FRM1, 0xc2000053],
  'fcvt.wu.d': ['D', 'fp', NONE, 'xd,fs1,rm', FRM1, 0xc2100053],
  'fcvt.l.d': ['D', 'fp', NONE, 'xd,fs1,rm', FRM1, 0xc2200053],
  'fcvt.lu.d': ['D', 'fp', NONE, 'xd,fs1,rm', FRM1, 0xc2300053],
  'fcvt.d.w': ['D', 'fp', NONE, 'fd,xs1', FRM1, 0xd2000053],
  'fcvt.d.wu': ['D', 'fp', NONE, 'fd,xs1', FRM1, 0xd2100053],
  'fcvt.d.l': ['D', 'fp', NONE, 'fd,xs1,rm', FRM1, 0xd2200053],
  'fcvt.d.lu': ['D', 'fp', NONE, 'fd,xs1,rm', FRM1, 0xd2300053],
  'fmv.x.d': ['D', 'fp', NONE, 'xd,fs1', F12, 0xe2000053],
  'fmv.d.x': ['D', 'fp', NONE, 'fd,xs1', F12, 0xf2000053],
  // Zba
  'add.uw': ['Zba', 'alu', NONE, R, F7, 0x0800003b],
  sh1add: ['Zba', 'alu', NONE, R, F7, 0x20002033],
  sh2add: ['Zba', 'alu', NONE, R, F7, 0x20004033],
  sh3add: ['Zba', 'alu', NONE, R, F7, 0x20006033],
  'sh1add.uw': ['Zba', 'alu', NONE, R, F7, 0x2000203b],
  'sh2add.uw': ['Zba', 'alu', NONE, R, F7, 0x2000403b],
  'sh3add.uw': ['Zba', 'alu', NONE, R, F7, 0x2000603b],
  'slli.uw': ['Zba', 'alu', SH6, RS, F6, 0x0800101b],
  // Zbb
  andn: ['Zbb', 'alu', NONE, R, F7, 0x40007033],
  orn: ['Zbb', 'alu', NONE, R, F7, 0x40006033],
  xnor: ['Zbb', 'alu', NONE, R, F7, 0x40004033],
  clz: ['Zbb', 'alu', NONE, R1, F12, 0x60001013],
  ctz: ['Zbb', 'alu', NONE, R1, F12, 0x60101013],
  cpop: ['Zbb', 'alu', NONE, R1, F12, 0x60201013],
  clzw: ['Zbb', 'alu', NONE, R1, F12, 0x6000101b],
  ctzw: ['Zbb', 'alu', NONE, R1, F12, 0x6010101b],
  cpopw: ['Zbb', 'alu', NONE, R1, F12, 0x6020101b],
  max: ['Zbb', 'alu', NONE, R, F7, 0x0a006033],
  maxu: ['Zbb', 'alu', NONE, R, F7, 0x0a007033],
  min: ['Zbb', 'alu', NONE, R, F7, 0x0a004033],
  minu: ['Zbb', 'alu', NONE, R, F7, 0x0a005033],
  'sext.b': ['Zbb', 'alu', NONE, R1, F12, 0x60401013],
  'sext.h': ['Zbb', 'alu', NONE, R1, F12, 0x60501013],
  'zext.h': ['Zbb', 'alu', NONE, R1, F12, 0x0800403b],
  rol: ['Zbb', 'alu', NONE, R, F7, 0x60001033],
  rolw: ['Zbb', 'alu', NONE, R, F7, 0x6000103b],
  ror: ['Zbb', 'alu', NONE, R, F7, 0x60005033],
  rorw: ['Zbb', 'alu', NONE, R, F7, 0x6000503b],
  rori: ['Zbb', 'alu', SH6, RS, F6, 0x60005013],
  roriw: ['Zbb', 'alu', SH5, RS, F7, 0x6000501b],
  'orc.b': ['Zbb', 'alu', NONE, R1, F12, 0x28705013],
  rev8: ['Zbb', 'alu', NONE, R1, F12, 0x6b805013],
  // Zbs
  bclr: ['Zbs', 'alu', NONE, R, F7, 0x48001033],
  bclri: ['Zbs', 'alu', SH6, RS, F6, 0x48001013],
  bext: ['Zbs', 'alu', NONE, R, F7, 0x48005033],
  bexti: ['Zbs', 'alu', SH6, RS, F6, 0x48005013],
  binv: ['Zbs', 'alu', NONE, R, F7, 0x68001033],
  binvi: ['Zbs', 'alu', SH6, RS, F6, 0x68001013],
  bset: ['Zbs', 'alu', NONE, R, F7, 0x28001033],
  bseti: ['Zbs', 'alu', SH6, RS, F6, 0x28001013],
} as const satisfies Record<string, Row>;

export type Mnemonic = keyof typeof TABLE;

/** Opcode names by number: OPCODE_NAMES[0] is 'illegal'. */
export const OPCODE_NAMES: readonly string[] = ['illegal', ...Object.keys(TABLE)];

/** Opcode numbers by mnemonic. */
export const OP = Object.freeze(
  Object.fromEntries(OPCODE_NAMES.map((name, i) => [name, i])) as { readonly [K in Mnemonic | 'illegal']: number },
);

export const OP_ILLEGAL = 0;

/** Specs by opcode number (index 0, 'illegal', has none). */
export const SPECS: readonly (InsnSpec | undefined)[] = [
  undefined,
  ...Object.values(TABLE).map(([ext, kind, imm, operands, mask, match]: Row) => ({
    ext,
    kind,
    imm,
    operands,
    mask: mask >>> 0,
    match: match >>> 0,
  })),
];

/** Opcode numbers of each kind (KIND_OF[op]); 'illegal' counts as 'system' (it traps). */
export const KIND_OF: readonly Kind[] = SPECS.map((s) => (s ? s.kind : 'system'));

/** True when an instruction ends a basic block: control transfers, CSR and system instructions, fence.i, illegal. */
export function endsBlock(op: number): boolean {
  const k = KIND_OF[op];
  return k === 'branch' || k === 'jump' || k === 'csr' || k === 'system' || k === 'fencei';
}

/** Which fields an instruction has, as bits of FIELDS_OF[op]: the operand syntax's registers, a static rounding mode, aq/rl. */
export const FIELD = { RD: 1, RS1: 2, RS2: 4, RS3: 8, RM: 16, AQRL: 32 } as const;

export const FIELDS_OF: Uint8Array = Uint8Array.from(SPECS, (spec) =>
  spec
    ? (/[xf]d\b/.test(spec.operands) ? FIELD.RD : 0) |
      (/[xf]s1\b|uimm/.test(spec.operands) ? FIELD.RS1 : 0) |
      (/[xf]s2\b/.test(spec.operands) ? FIELD.RS2 : 0) |
      (/fs3\b/.test(spec.operands) ? FIELD.RS3 : 0) |
      (/\brm\b/.test(spec.operands) ? FIELD.RM : 0) |
      (spec.kind === 'atomic' ? FIELD.AQRL : 0)
    : 0,
);
