/**
 * The differential-test driver: random straight-line programs, drawn from the
 * instruction table, run from the same state on two sides (two engines, or an
 * engine and a peer such as qemu-riscv64); every x and f register, fcsr, the
 * RAM window, and where both sides know them pc and instret must agree.
 *
 * Theory of operation. A program is `length` random valid encodings of
 * non-control, non-system instructions (ALU, M, Zb*, loads, stores, atomics,
 * FP loads/stores, and with `fp` the FP operations), followed by a jump to
 * itself where the run stops. x28..x31 hold addresses inside a 16 KiB RAM
 * window and are never written, so every load, store and atomic (rs1 is one
 * of them; atomics use them unoffset, so they are aligned) stays in RAM;
 * loads and stores may be misaligned. The other registers and the window
 * start random, with a bias towards edge values (0, ±1, extremes, NaNs).
 * mtvec points at the final self-jump, so a trap (none is expected) ends the
 * program on both engines alike.
 *
 * On a difference, the driver finds the shortest failing prefix of the
 * program and reports it disassembled with the first differing state, so the
 * culprit is the prefix's last instruction.
 */
import type { EngineName } from '../engine.js';
import { RAM_GPA_BASE } from '../layout.js';
import { decode } from '../isa/decode.js';
import { disassemble } from '../isa/disasm.js';
import { encode } from '../isa/encode.js';
import { IMM, OP, OPCODE_NAMES, SPECS, type Kind } from '../isa/table.js';
import { TestCpu } from './cpu.js';
import { Random } from './random.js';

export interface DiffOptions {
  seed: number;
  /** Instructions per program. */
  length: number;
  /** Two engines to compare (shorthand for sides: [engineSide(a), engineSide(b)]) … */
  engines?: readonly [EngineName, EngineName];
  /** … or any two sides. */
  sides?: readonly [DiffSide, DiffSide];
  /** Include FP arithmetic, compares and conversions (H3's executor). */
  fp: boolean;
  /** Mnemonics never to generate (e.g. where a peer legitimately differs). */
  exclude?: ReadonlySet<string>;
}

export interface DiffReport {
  seed: number;
  /** The shortest failing program, disassembled, one instruction a line. */
  program: string[];
  /** "x5: interp 0x… jit 0x…" lines (side names). */
  differences: string[];
}

const CODE_BASE = RAM_GPA_BASE;
const WINDOW = RAM_GPA_BASE + 0x10_0000;
const WINDOW_BYTES = 0x4000;
const BASE_REGS = [28, 29, 30, 31];
const BASE_OFFSETS = [0x800, 0x1800, 0x2800, 0x3800 - 8];
const CSR_MSTATUS = 0x300;
const CSR_MTVEC = 0x305;
const CSR_FCSR = 0x003;
const MSTATUS_FS_INITIAL = 1n << 13n;
const JUMP_TO_SELF = 0x0000006f;
const LOOP_REG = 27;
const ITERATIONS = 3;

const EDGE_VALUES = [
  0n, 1n, 2n, 0xffff_ffff_ffff_ffffn, 0x8000_0000_0000_0000n, 0x7fff_ffff_ffff_ffffn, 0x8000_0000n, 0x7fff_ffffn,
  0xffff_ffffn, 0xffff_ffff_8000_0000n, 0x3ff0_0000_0000_0000n, 0x7ff8_0000_0000_0000n, 0xffff_ffff_7fc0_0000n,
  0xffff_ffff_3f80_0000n, 0x7ff0_0000_0000_0000n,
];

const MEMORY_KINDS: ReadonlySet<Kind> = new Set(['load', 'store', 'fload', 'fstore', 'atomic']);

function eligibleOpcodes(fp: boolean, exclude: ReadonlySet<string>): number[] {
  const kinds: ReadonlySet<Kind> = new Set<Kind>(['alu', 'load', 'store', 'fload', 'fstore', 'atomic', 'fence', ...(fp ? (['fp'] as const) : [])]);
  return SPECS.flatMap((s, op) => (s && kinds.has(s.kind) && !exclude.has(OPCODE_NAMES[op]!) ? [op] : []));
}

function randomValue(rnd: Random): bigint {
  if (rnd.int(0, 2) === 0) return rnd.pick(EDGE_VALUES);
  return (BigInt(rnd.u32()) << 32n) | BigInt(rnd.u32());
}

function randomImmediate(rnd: Random, format: number): number {
  switch (format) {
    case IMM.U:
      return rnd.u32() & 0xfffff000;
    case IMM.SH6:
      return rnd.int(0, 63);
    case IMM.SH5:
      return rnd.int(0, 31);
    case IMM.FENCE:
      return rnd.int(0, 255);
    default:
      return rnd.int(-2048, 2047);
  }
}

/** One random instruction word of opcode `op`. */
function randomInstruction(rnd: Random, op: number): number {
  const spec = SPECS[op]!;
  const memory = MEMORY_KINDS.has(spec.kind);
  // Results never land in the base registers; FP registers are all fair game.
  const fpRd = spec.operands.startsWith('fd');
  return encode(op, {
    rd: fpRd ? rnd.int(0, 31) : rnd.int(0, LOOP_REG - 1),
    rs1: memory ? rnd.pick(BASE_REGS) : rnd.int(0, 31),
    rs2: rnd.int(0, 31),
    rs3: rnd.int(0, 31),
    imm: spec.kind === 'atomic' ? 0 : randomImmediate(rnd, spec.imm),
    rm: spec.kind === 'atomic' ? rnd.int(0, 3) : rnd.pick([0, 1, 2, 3, 4, 7, 7]),
  });
}

function randomProgram(rnd: Random, length: number, fp: boolean, exclude: ReadonlySet<string>): number[] {
  const ops = eligibleOpcodes(fp, exclude);
  return Array.from({ length }, () => randomInstruction(rnd, rnd.pick(ops)));
}

/** Registers and memory a program starts from. */
export interface StartState {
  x: bigint[];
  f: bigint[];
  window: Uint8Array;
}

/** What a side reports after running a program; pc and instret only where the side knows them. */
export interface FinalState {
  pc?: bigint;
  instret?: bigint;
  x: bigint[];
  f: bigint[];
  fcsr: bigint;
  window: Uint8Array;
}

/** One way of running a program: an engine, or a peer program (a test's QEMU side). */
export interface DiffSide {
  readonly name: string;
  run(program: readonly number[], state: StartState): FinalState;
}

/** Where programs live; a side that builds its own image (QEMU) places them the same way. */
export const DIFF_LAYOUT = {
  codeBase: CODE_BASE,
  window: WINDOW,
  windowBytes: WINDOW_BYTES,
  loopReg: LOOP_REG,
  iterations: ITERATIONS,
} as const;

function randomState(rnd: Random): StartState {
  const x = Array.from({ length: 32 }, () => randomValue(rnd));
  x[0] = 0n;
  BASE_REGS.forEach((r, i) => (x[r] = BigInt(WINDOW + BASE_OFFSETS[i]!)));
  x[LOOP_REG] = BigInt(ITERATIONS);
  const f = Array.from({ length: 32 }, () => randomValue(rnd));
  const window = new Uint8Array(WINDOW_BYTES);
  for (let i = 0; i < WINDOW_BYTES; i += 4) new DataView(window.buffer).setUint32(i, rnd.u32(), true);
  return { x, f, window };
}

/** The random program and start state of `seed`. */
export function randomCase(seed: number, length: number, fp: boolean, exclude: ReadonlySet<string> = new Set()): { program: number[]; state: StartState } {
  const rnd = new Random(seed);
  const program = randomProgram(rnd, length, fp, exclude);
  return { program, state: randomState(rnd) };
}

/** The loop closing the body: x27 -= 1; bne x27, x0, body (x27 counts ITERATIONS down to 0). */
export function loopTail(bodyLength: number): number[] {
  return [
    encode(OP.addi, { rd: LOOP_REG, rs1: LOOP_REG, imm: -1 }),
    encode(OP.bne, { rs1: LOOP_REG, rs2: 0, imm: -4 * (bodyLength + 1) }),
  ];
}

/** The body, the loop, and the final jump to itself. */
function machineCode(body: readonly number[]): Uint8Array {
  const words = [...body, ...loopTail(body.length), JUMP_TO_SELF];
  const code = new Uint8Array(words.length * 4);
  const view = new DataView(code.buffer);
  words.forEach((w, i) => view.setUint32(i * 4, w, true));
  return code;
}

/** Guest address of the final jump to itself. */
function endOf(body: readonly number[]): number {
  return CODE_BASE + (body.length + 2) * 4;
}

/** Runs a program on a fresh TestCpu with `engine`. */
export function engineSide(engine: EngineName): DiffSide {
  return {
    name: engine,
    run(program, state) {
      const cpu = new TestCpu({ engine, ramBytes: 4 << 20 });
      cpu.writeMemory(CODE_BASE, machineCode(program));
      cpu.writeMemory(WINDOW, state.window);
      state.x.forEach((v, r) => cpu.setX(r, v));
      state.f.forEach((v, r) => cpu.setF(r, v));
      cpu.writeCsr(CSR_MSTATUS, MSTATUS_FS_INITIAL);
      cpu.writeCsr(CSR_MTVEC, BigInt(endOf(program)));
      cpu.pc = BigInt(CODE_BASE);
      cpu.run({ until: BigInt(endOf(program)), maxInsns: (program.length + 2) * ITERATIONS * 2 + 16 });
      return {
        pc: cpu.pc,
        instret: BigInt(cpu.instret()),
        x: Array.from({ length: 32 }, (_, r) => cpu.getX(r)),
        f: Array.from({ length: 32 }, (_, r) => cpu.getF(r)),
        fcsr: cpu.readCsr(CSR_FCSR),
        window: cpu.readMemory(WINDOW, WINDOW_BYTES),
      };
    },
  };
}

function hex(v: bigint): string {
  return `0x${v.toString(16).padStart(16, '0')}`;
}

/** The differing parts of two final states, as report lines. */
function compare(a: FinalState, b: FinalState, names: readonly [string, string]): string[] {
  const out: string[] = [];
  const check = (what: string, va: bigint | undefined, vb: bigint | undefined) => {
    if (va !== undefined && vb !== undefined && va !== vb) out.push(`${what}: ${names[0]} ${hex(va)} ${names[1]} ${hex(vb)}`);
  };
  check('pc', a.pc, b.pc);
  for (let r = 1; r < 32; r++) check(`x${r}`, a.x[r], b.x[r]);
  for (let r = 0; r < 32; r++) check(`f${r}`, a.f[r], b.f[r]);
  check('fcsr', a.fcsr, b.fcsr);
  check('instret', a.instret, b.instret);
  const i = a.window.findIndex((v, k) => v !== b.window[k]);
  if (i >= 0) out.push(`memory at 0x${(WINDOW + i).toString(16)}: ${names[0]} 0x${a.window[i]!.toString(16)} ${names[1]} 0x${b.window[i]!.toString(16)}`);
  return out;
}

function runBoth(program: readonly number[], state: StartState, sides: readonly [DiffSide, DiffSide]): string[] {
  return compare(sides[0].run(program, state), sides[1].run(program, state), [sides[0].name, sides[1].name]);
}

/** Runs one random program on both sides; undefined when they agree, else a report of the shortest failing prefix. */
export function differentialRun(options: DiffOptions): DiffReport | undefined {
  const sides = options.sides ?? (options.engines?.map(engineSide) as [DiffSide, DiffSide] | undefined);
  if (!sides) throw new Error('differentialRun needs two engines or two sides');
  const { program, state } = randomCase(options.seed, options.length, options.fp, options.exclude);
  let differences = runBoth(program, state, sides);
  if (differences.length === 0) return undefined;
  let failing = program;
  for (let n = 1; n < program.length; n++) {
    const prefix = program.slice(0, n);
    const d = runBoth(prefix, state, sides);
    if (d.length > 0) {
      failing = prefix;
      differences = d;
      break;
    }
  }
  const listing = failing.map((w, i) => {
    const pc = BigInt(CODE_BASE + 4 * i);
    return `${hex(pc)}: ${w.toString(16).padStart(8, '0')}  ${disassemble(decode(w), pc)}`;
  });
  return { seed: options.seed, program: listing, differences };
}
