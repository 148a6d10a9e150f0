/**
 * The FP executor: runs one RISC-V F/D instruction that is not a load or a
 * store, on a hart's state block in the machine's shared memory.
 *
 * Theory of operation. The interpreter calls executeFp with the decoded
 * fields of isa/decode.ts (op number, rd, rs1, rs2, rs3, rm); translated
 * WebAssembly code imports the closure from makeFpHelper, whose parameters
 * are all i32. The caller has already checked mstatus.FS. The executor
 * resolves the rounding mode (the static rm, or frm for rm = 7; a reserved
 * mode is an illegal instruction and changes nothing), reads the operands
 * through an Int32Array over the state block (f registers are 8-byte slots;
 * a single is valid only NaN-boxed, i.e. with all-ones upper 32 bits, and
 * otherwise reads as the canonical NaN), runs the operation, writes the
 * result (singles NaN-boxed; NaN results canonical: 0x7fc00000 and
 * 0x7ff8000000000000; writes to x0 dropped) and ORs the raised flags into
 * fflags. It returns FP_ILLEGAL, FP_DIRTY (an f register or fflags was
 * written: the caller marks FS dirty) or FP_CLEAN.
 *
 * Limits: the Int32Array must view the whole shared memory from an 8-byte
 * aligned start (float views share its bytes; the machine's memory never
 * grows). Loads and stores (flw/fld/fsw/fsd) belong to the
 * engines, which move raw bits.
 */
import { OP, SPECS } from '../isa/table.js';
import { HS } from '../layout.js';
import { fpAdd, fpDiv, fpFusedMultiplyAdd, fpMul, fpSqrt } from './arith.js';
import { fpClass, fpEqual, fpLess, fpLessOrEqual, fpMax, fpMin } from './compare.js';
import { floatToInt, INT_L, INT_LU, INT_W, INT_WU, intResult, intToFloat, narrow } from './convert.js';
import { BINARY32, BINARY64, FLAG_NV, fpFlags, RM_DYN, RM_RMM, type FloatFormat } from './round.js';

export const FP_CLEAN = 0;
export const FP_DIRTY = 1;
export const FP_ILLEGAL = 2;

/** What an FP opcode does; the format comes separately. */
const K = {
  ADD: 1, SUB: 2, MUL: 3, DIV: 4, SQRT: 5,
  MADD: 6, MSUB: 7, NMSUB: 8, NMADD: 9,
  SGNJ: 10, SGNJN: 11, SGNJX: 12, MIN: 13, MAX: 14,
  EQ: 15, LT: 16, LE: 17, CLASS: 18,
  TO_W: 19, TO_WU: 20, TO_L: 21, TO_LU: 22,
  FROM_W: 23, FROM_WU: 24, FROM_L: 25, FROM_LU: 26,
  MV_TO_X: 27, MV_FROM_X: 28, CVT_S_D: 29, CVT_D_S: 30,
} as const;

/** Kinds by full mnemonic or by mnemonic without its last '.x' part. */
const KIND_BY_NAME: Record<string, number> = {
  fadd: K.ADD, fsub: K.SUB, fmul: K.MUL, fdiv: K.DIV, fsqrt: K.SQRT,
  fmadd: K.MADD, fmsub: K.MSUB, fnmsub: K.NMSUB, fnmadd: K.NMADD,
  fsgnj: K.SGNJ, fsgnjn: K.SGNJN, fsgnjx: K.SGNJX, fmin: K.MIN, fmax: K.MAX,
  feq: K.EQ, flt: K.LT, fle: K.LE, fclass: K.CLASS,
  'fcvt.w': K.TO_W, 'fcvt.wu': K.TO_WU, 'fcvt.l': K.TO_L, 'fcvt.lu': K.TO_LU,
  'fcvt.s.w': K.FROM_W, 'fcvt.s.wu': K.FROM_WU, 'fcvt.s.l': K.FROM_L, 'fcvt.s.lu': K.FROM_LU,
  'fcvt.d.w': K.FROM_W, 'fcvt.d.wu': K.FROM_WU, 'fcvt.d.l': K.FROM_L, 'fcvt.d.lu': K.FROM_LU,
  'fmv.x': K.MV_TO_X, 'fmv.w': K.MV_FROM_X, 'fmv.d': K.MV_FROM_X,
  'fcvt.s.d': K.CVT_S_D, 'fcvt.d.s': K.CVT_D_S,
};

// Per opcode: kind, whether the format is binary64, whether the rm field is a rounding mode.
const KIND = new Uint8Array(SPECS.length);
const DOUBLE = new Uint8Array(SPECS.length);
const ROUNDS = new Uint8Array(SPECS.length);

/**
 * Every arithmetic and conversion instruction has a rounding-mode field that must be valid, even the exact
 * ones (fcvt.d.s, fcvt.d.w[u]) whose table entries print no rm: qemu-riscv64 traps on 5..7 there too.
 */
function hasRoundingMode(kind: number): boolean {
  return kind <= K.NMADD || (kind >= K.TO_W && kind <= K.FROM_LU) || kind === K.CVT_S_D || kind === K.CVT_D_S;
}

function buildTables(): void {
  for (const [name, op] of Object.entries(OP)) {
    const spec = SPECS[op];
    if (!spec || spec.kind !== 'fp') continue;
    const parts = name.split('.');
    const kind = KIND_BY_NAME[name] ?? KIND_BY_NAME[parts.slice(0, -1).join('.')];
    if (kind === undefined) throw new Error(`FP executor: no kind for ${name}`);
    KIND[op] = kind;
    // The format is the destination's for conversions from integers and moves into f, the source's otherwise.
    const intoF = kind === K.MV_FROM_X || (kind >= K.FROM_W && kind <= K.FROM_LU);
    DOUBLE[op] = (intoF ? parts[1] : parts[parts.length - 1]) === 'd' ? 1 : 0;
    ROUNDS[op] = hasRoundingMode(kind) ? 1 : 0;
  }
}
buildTables();

// Operand access over the current state block.
let heap: Int32Array = new Int32Array(0);
// Float views over the same bytes as heap (same indexes as heap's for f32, halved for f64).
let heapF64: Float64Array = new Float64Array(0);
let heapF32: Float32Array = new Float32Array(0);
let fIndex = 0;
let xIndex = 0;
let signalingSeen = false;

const CANONICAL_SINGLE = 0x7fc00000;
const CANONICAL_DOUBLE_HI = 0x7ff80000;

/** The 32-bit pattern of a single in f[r]: the canonical NaN unless NaN-boxed. */
function singleBitsOf(r: number): number {
  return heap[fIndex + 2 * r + 1] === -1 ? heap[fIndex + 2 * r]! : CANONICAL_SINGLE;
}

function isSignalingSingle(bits: number): boolean {
  return (bits & 0x7fc00000) === 0x7f800000 && (bits & 0x3fffff) !== 0;
}

function isSignalingDouble(lo: number, hi: number): boolean {
  return (hi & 0x7ff80000) === 0x7ff00000 && ((hi & 0x7ffff) | lo) !== 0;
}

/** The value of f[r] in fmt (NaN for any NaN, whose bits are classified here); notes signaling NaNs. */
function readF(r: number, double: boolean): number {
  const i = fIndex + 2 * r;
  if (double) {
    if (isSignalingDouble(heap[i]!, heap[i + 1]!)) signalingSeen = true;
    return heapF64[i >> 1]!;
  }
  if (heap[i + 1] !== -1) return NaN;
  if (isSignalingSingle(heap[i]!)) signalingSeen = true;
  return heapF32[i]!;
}

function writeFBits(rd: number, lo: number, hi: number): void {
  heap[fIndex + 2 * rd] = lo;
  heap[fIndex + 2 * rd + 1] = hi;
}

/** Writes a result (exactly representable in the format, or NaN: written canonical). */
function writeF(rd: number, value: number, double: boolean): void {
  const i = fIndex + 2 * rd;
  if (value !== value) {
    writeFBits(rd, double ? 0 : CANONICAL_SINGLE, double ? CANONICAL_DOUBLE_HI : -1);
  } else if (double) {
    heapF64[i >> 1] = value;
  } else {
    heapF32[i] = value;
    heap[i + 1] = -1;
  }
}

function writeX(rd: number, lo: number, hi: number): void {
  if (rd === 0) return;
  heap[xIndex + 2 * rd] = lo;
  heap[xIndex + 2 * rd + 1] = hi;
}

function readXLo(r: number): number {
  return r === 0 ? 0 : heap[xIndex + 2 * r]!;
}

function readXHi(r: number): number {
  return r === 0 ? 0 : heap[xIndex + 2 * r + 1]!;
}

/** The sign bit fsgnj/fsgnjn/fsgnjx give a result, from the high words of both operands. */
function injectedSign(kind: number, high1: number, high2: number): number {
  const sign = kind === K.SGNJ ? high2 : kind === K.SGNJN ? ~high2 : high1 ^ high2;
  return sign & 0x80000000;
}

/** Sign injection on raw patterns (no NV, no canonicalisation beyond unboxing). */
function signInject(kind: number, rd: number, rs1: number, rs2: number, double: boolean): void {
  if (double) {
    const high1 = heap[fIndex + 2 * rs1 + 1]!;
    const sign = injectedSign(kind, high1, heap[fIndex + 2 * rs2 + 1]!);
    writeFBits(rd, heap[fIndex + 2 * rs1]!, (high1 & 0x7fffffff) | sign);
  } else {
    const bits1 = singleBitsOf(rs1);
    writeFBits(rd, (bits1 & 0x7fffffff) | injectedSign(kind, bits1, singleBitsOf(rs2)), -1);
  }
}

const INT_KIND_TO = [INT_W, INT_WU, INT_L, INT_LU];

/** Runs the operation; returns true when an f register was written. */
function run(kind: number, double: boolean, rd: number, rs1: number, rs2: number, rs3: number, rm: number): boolean {
  const fmt: FloatFormat = double ? BINARY64 : BINARY32;
  switch (kind) {
    case K.ADD:
    case K.SUB:
    case K.MUL:
    case K.DIV: {
      const x = readF(rs1, double);
      const y = readF(rs2, double);
      noteSignaling();
      const r =
        kind === K.ADD ? fpAdd(x, y, fmt, rm) : kind === K.SUB ? fpAdd(x, -y, fmt, rm) : kind === K.MUL ? fpMul(x, y, fmt, rm) : fpDiv(x, y, fmt, rm);
      writeF(rd, r, double);
      return true;
    }
    case K.SQRT: {
      const x = readF(rs1, double);
      noteSignaling();
      writeF(rd, fpSqrt(x, fmt, rm), double);
      return true;
    }
    case K.MADD:
    case K.MSUB:
    case K.NMSUB:
    case K.NMADD: {
      const x = readF(rs1, double);
      const y = readF(rs2, double);
      const z = readF(rs3, double);
      noteSignaling();
      const negateProduct = kind === K.NMSUB || kind === K.NMADD;
      const negateAddend = kind === K.MSUB || kind === K.NMADD;
      writeF(rd, fpFusedMultiplyAdd(negateProduct ? -x : x, y, negateAddend ? -z : z, fmt, rm), double);
      return true;
    }
    case K.SGNJ:
    case K.SGNJN:
    case K.SGNJX:
      signInject(kind, rd, rs1, rs2, double);
      return true;
    case K.MIN:
    case K.MAX: {
      const x = readF(rs1, double);
      const y = readF(rs2, double);
      noteSignaling();
      writeF(rd, kind === K.MIN ? fpMin(x, y) : fpMax(x, y), double);
      return true;
    }
    case K.EQ:
    case K.LT:
    case K.LE: {
      const x = readF(rs1, double);
      const y = readF(rs2, double);
      noteSignaling();
      writeX(rd, kind === K.EQ ? fpEqual(x, y) : kind === K.LT ? fpLess(x, y) : fpLessOrEqual(x, y), 0);
      return false;
    }
    case K.CLASS: {
      const x = readF(rs1, double);
      writeX(rd, fpClass(x, signalingSeen, fmt), 0);
      return false;
    }
    case K.TO_W:
    case K.TO_WU:
    case K.TO_L:
    case K.TO_LU: {
      const x = readF(rs1, double);
      noteSignaling();
      floatToInt(x, INT_KIND_TO[kind - K.TO_W]!, rm);
      writeX(rd, intResult.lo, intResult.hi);
      return false;
    }
    case K.FROM_W:
    case K.FROM_WU:
    case K.FROM_L:
    case K.FROM_LU:
      writeF(rd, intToFloat(readXLo(rs1), readXHi(rs1), INT_KIND_TO[kind - K.FROM_W]!, fmt, rm), double);
      return true;
    case K.MV_TO_X:
      if (double) writeX(rd, heap[fIndex + 2 * rs1]!, heap[fIndex + 2 * rs1 + 1]!);
      else writeX(rd, heap[fIndex + 2 * rs1]!, heap[fIndex + 2 * rs1]! < 0 ? -1 : 0);
      return false;
    case K.MV_FROM_X:
      writeFBits(rd, readXLo(rs1), double ? readXHi(rs1) : -1);
      return true;
    case K.CVT_S_D: {
      const x = readF(rs1, true);
      noteSignaling();
      writeF(rd, narrow(x, BINARY32, rm), false);
      return true;
    }
    case K.CVT_D_S: {
      const x = readF(rs1, false);
      noteSignaling();
      writeF(rd, x, true);
      return true;
    }
    default:
      throw new Error(`FP executor: unknown kind ${kind}`);
  }
}

function noteSignaling(): void {
  if (signalingSeen) fpFlags.value |= FLAG_NV;
}

/** Points the executor at `mem`; the float views are rebuilt only for a different buffer (engines each hold their own Int32Array). */
function bindViews(mem: Int32Array): void {
  heap = mem;
  if (mem.buffer === heapF64.buffer && mem.byteOffset === heapF64.byteOffset && mem.length === heapF32.length) return;
  if (mem.byteOffset % 8 !== 0) throw new RangeError('FP executor: the memory view must start 8-byte aligned');
  heapF64 = new Float64Array(mem.buffer, mem.byteOffset, mem.length >> 1);
  heapF32 = new Float32Array(mem.buffer, mem.byteOffset, mem.length);
}

/**
 * Executes FP instruction `op` (an opcode number of isa/table.ts whose kind
 * is 'fp') for the hart whose state block starts at byte `stateBase` of the
 * memory `mem` views. Returns FP_CLEAN, FP_DIRTY or FP_ILLEGAL.
 */
export function executeFp(mem: Int32Array, stateBase: number, op: number, rd: number, rs1: number, rs2: number, rs3: number, rm: number): number {
  const kind = KIND[op] ?? 0;
  if (kind === 0) return FP_ILLEGAL;
  if (ROUNDS[op] === 1) {
    if (rm === RM_DYN) rm = mem[(stateBase + HS.FRM) >> 2]! & 7;
    if (rm > RM_RMM) return FP_ILLEGAL;
  }
  if (mem !== heap) bindViews(mem);
  fIndex = (stateBase + HS.F) >> 2;
  xIndex = (stateBase + HS.X) >> 2;
  signalingSeen = false;
  fpFlags.value = 0;
  const wroteF = run(kind, DOUBLE[op] === 1, rd, rs1, rs2, rs3, rm);
  const flags = fpFlags.value;
  if (flags !== 0) mem[(stateBase + HS.FFLAGS) >> 2]! |= flags;
  return wroteF || flags !== 0 ? FP_DIRTY : FP_CLEAN;
}

/** The helper translated code imports: all-i32 parameters, bound to one hart's state block. */
export function makeFpHelper(memory: WebAssembly.Memory, stateBase: number): (op: number, rd: number, rs1: number, rs2: number, rs3: number, rm: number) => number {
  const mem = new Int32Array(memory.buffer);
  return (op, rd, rs1, rs2, rs3, rm) => executeFp(mem, stateBase, op, rd, rs1, rs2, rs3, rm);
}
