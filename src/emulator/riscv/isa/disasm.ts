/**
 * A disassembler for error messages and test reports: prints a decoded
 * instruction as its mnemonic and operands, driven by the operand syntax in
 * the instruction table. Registers use ABI names, immediates are decimal
 * (lui/auipc print the 20-bit upper immediate in hex, CSRs print their
 * number in hex), pc-relative targets print as absolute addresses when the
 * pc is given and as ".+offset" otherwise. Compressed instructions print as
 * the 32-bit instruction they expand to. Not a hot path.
 */
import type { Insn } from './decode.js';
import { IMM, OPCODE_NAMES, SPECS } from './table.js';

export const X_NAMES: readonly string[] = [
  'zero', 'ra', 'sp', 'gp', 'tp', 't0', 't1', 't2', 's0', 's1', 'a0', 'a1', 'a2', 'a3', 'a4', 'a5',
  'a6', 'a7', 's2', 's3', 's4', 's5', 's6', 's7', 's8', 's9', 's10', 's11', 't3', 't4', 't5', 't6',
];

export const F_NAMES: readonly string[] = [
  'ft0', 'ft1', 'ft2', 'ft3', 'ft4', 'ft5', 'ft6', 'ft7', 'fs0', 'fs1', 'fa0', 'fa1', 'fa2', 'fa3', 'fa4', 'fa5',
  'fa6', 'fa7', 'fs2', 'fs3', 'fs4', 'fs5', 'fs6', 'fs7', 'fs8', 'fs9', 'fs10', 'fs11', 'ft8', 'ft9', 'ft10', 'ft11',
];

const ROUNDING = ['rne', 'rtz', 'rdn', 'rup', 'rmm', '5', '6', 'dyn'];
const AQRL = ['', '.rl', '.aq', '.aqrl'];

function fenceSet(bits: number): string {
  const s = (bits & 8 ? 'i' : '') + (bits & 4 ? 'o' : '') + (bits & 2 ? 'r' : '') + (bits & 1 ? 'w' : '');
  return s === '' ? '0' : s;
}

function operand(token: string, d: Insn, upper: boolean, pc: bigint | undefined): string | undefined {
  switch (token) {
    case 'xd': return X_NAMES[d.rd];
    case 'xs1': return X_NAMES[d.rs1];
    case 'xs2': return X_NAMES[d.rs2];
    case 'fd': return F_NAMES[d.rd];
    case 'fs1': return F_NAMES[d.rs1];
    case 'fs2': return F_NAMES[d.rs2];
    case 'fs3': return F_NAMES[d.rs3];
    case 'imm': return upper ? `0x${(d.imm >>> 12).toString(16)}` : String(d.imm);
    case 'shamt': return String(d.imm);
    case 'uimm': return String(d.rs1);
    case 'csr': return `0x${d.imm.toString(16)}`;
    case 'off(xs1)': return `${d.imm}(${X_NAMES[d.rs1]})`;
    case '(xs1)': return `(${X_NAMES[d.rs1]})`;
    case 'target': return pc === undefined ? `.${d.imm < 0 ? '' : '+'}${d.imm}` : `0x${BigInt.asUintN(64, pc + BigInt(d.imm)).toString(16)}`;
    case 'rm': return d.rm === 7 ? undefined : ROUNDING[d.rm];
    case 'fence': return `${fenceSet((d.imm >>> 4) & 15)},${fenceSet(d.imm & 15)}`;
    default: return token;
  }
}

/** "addi sp,sp,-16" for a decoded instruction; `pc` makes branch and jump targets absolute. */
export function disassemble(d: Insn, pc?: bigint): string {
  const spec = SPECS[d.op];
  const name = OPCODE_NAMES[d.op]!;
  if (!spec) return `${name} 0x${d.raw.toString(16).padStart(d.len * 2, '0')}`;
  const mnemonic = spec.kind === 'atomic' ? name + AQRL[d.rm & 3]! : name;
  const tokens = spec.operands === '' ? [] : spec.operands.split(',');
  const ops = tokens.map((t) => operand(t, d, spec.imm === IMM.U, pc)).filter((s): s is string => s !== undefined);
  return ops.length === 0 ? mnemonic : `${mnemonic} ${ops.join(',')}`;
}
