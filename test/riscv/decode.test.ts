/**
 * Decoder tests against the GNU assembler: every table entry is written out
 * with random operands, assembled (once with RVC, so gas compresses what it
 * can, once without), and the decoded bytes must give back the mnemonic and
 * every operand field. Also: illegal and reserved encodings decode to
 * 'illegal' without throwing, and the basic-block decoder stops where it must.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decode, decodeBlock, disassemble, expandCompressed, Insn, OP, OPCODE_NAMES, SPECS, IMM } from '../../src/emulator/riscv/isa/index.js';
import { Random } from '../../src/emulator/riscv/harness/random.js';
import { scratchDir } from '../helpers/peers.js';
import { assemble, objdump } from './toolchain.js';

interface Expected {
  op: number;
  text: string;
  rd: number;
  rs1: number;
  rs2: number;
  rs3: number;
  imm: number;
  rm: number | undefined;
}

const ROUNDING = ['rne', 'rtz', 'rdn', 'rup', 'rmm'];
const AQRL = ['', '.rl', '.aq', '.aqrl'];
const COMMUTATIVE = new Set([OP.add, OP.and, OP.or, OP.xor, OP.addw]);

function randomInstruction(op: number, rnd: Random): Expected {
  const spec = SPECS[op]!;
  const e: Expected = { op, text: '', rd: 0, rs1: 0, rs2: 0, rs3: 0, imm: 0, rm: undefined };
  // Small registers and immediates half the time, so that gas compresses.
  const small = rnd.int(0, 1) === 0;
  const reg = () => (small ? rnd.int(8, 15) : rnd.int(0, 31));
  const parts: string[] = [];
  let name = OPCODE_NAMES[op]!;
  // Shapes gas can compress: rd = rs1, branches against x0, jumps linking x0/ra with no offset.
  const sameRd = small && rnd.int(0, 1) === 0;
  const againstZero = small && spec.kind === 'branch';
  const plainJump = small && spec.kind === 'jump';
  for (const token of spec.operands === '' ? [] : spec.operands.split(',')) {
    switch (token) {
      case 'xd': e.rd = plainJump ? rnd.int(0, 1) : reg(); parts.push(`x${e.rd}`); break;
      case 'fd': e.rd = reg(); parts.push(`f${e.rd}`); break;
      case 'xs1': e.rs1 = sameRd && spec.operands.startsWith('xd') ? e.rd : reg(); parts.push(`x${e.rs1}`); break;
      case 'fs1': e.rs1 = reg(); parts.push(`f${e.rs1}`); break;
      case 'xs2': e.rs2 = againstZero ? 0 : reg(); parts.push(`x${e.rs2}`); break;
      case 'fs2': e.rs2 = reg(); parts.push(`f${e.rs2}`); break;
      case 'fs3': e.rs3 = reg(); parts.push(`f${e.rs3}`); break;
      case 'imm':
        e.imm = spec.imm === IMM.U ? rnd.int(1, 0xfffff) : small ? rnd.int(-32, 31) : rnd.int(-2048, 2047);
        parts.push(String(e.imm));
        if (spec.imm === IMM.U) e.imm = (e.imm << 12) | 0;
        break;
      case 'shamt':
        e.imm = rnd.int(1, spec.imm === IMM.SH5 ? 31 : 63);
        parts.push(String(e.imm));
        break;
      case 'off(xs1)': {
        e.rs1 = plainJump ? rnd.int(1, 31) : small ? rnd.pick([2, 8, 9, 10]) : rnd.int(0, 31);
        e.imm = plainJump ? 0 : small ? rnd.int(0, 15) * 8 : rnd.int(-2048, 2047);
        parts.push(`${e.imm}(x${e.rs1})`);
        break;
      }
      case '(xs1)': e.rs1 = reg(); parts.push(`(x${e.rs1})`); break;
      case 'target': {
        const range = spec.imm === IMM.J ? 1 << 19 : 1 << 11;
        e.imm = rnd.int(-range / 2, range / 2 - 1) * 2;
        parts.push(`.${e.imm < 0 ? '' : '+'}${e.imm}`);
        break;
      }
      case 'csr': e.imm = rnd.int(0, 0xfff); parts.push(`0x${e.imm.toString(16)}`); break;
      case 'uimm': e.rs1 = rnd.int(0, 31); parts.push(String(e.rs1)); break;
      case 'rm': {
        e.rm = rnd.int(0, 7);
        if (e.rm === 5 || e.rm === 6) e.rm = 7;
        parts.push(e.rm === 7 ? 'dyn' : ROUNDING[e.rm]!);
        break;
      }
      case 'fence': {
        const pred = rnd.int(1, 15);
        const succ = rnd.int(1, 15);
        const set = (b: number) => (b & 8 ? 'i' : '') + (b & 4 ? 'o' : '') + (b & 2 ? 'r' : '') + (b & 1 ? 'w' : '');
        e.imm = (pred << 4) | succ;
        parts.push(set(pred), set(succ));
        break;
      }
      default: throw new Error(`unknown operand token ${token}`);
    }
  }
  if (spec.kind === 'atomic') {
    e.rm = rnd.int(0, 3);
    name += AQRL[e.rm];
  }
  e.text = parts.length === 0 ? name : `${name} ${parts.join(',')}`;
  return e;
}

async function roundTrip(march: string, rvc: boolean, seed: number): Promise<void> {
  const rnd = new Random(seed);
  const expected: Expected[] = [];
  for (let round = 0; round < 4; round++) {
    for (let op = 1; op < OPCODE_NAMES.length; op++) expected.push(randomInstruction(op, rnd));
  }
  const source = ['.option norelax', '.section .text.init', '.globl _start', '_start:', ...expected.map((e) => `  ${e.text}`), ''].join('\n');
  const { dir, cleanup } = await scratchDir();
  try {
    const { text } = await assemble(dir, 'all', source, march);
    const view = new DataView(text.buffer, text.byteOffset, text.byteLength);
    let offset = 0;
    let compressed = 0;
    for (const e of expected) {
      const word = offset + 4 <= text.length ? view.getUint32(offset, true) : view.getUint16(offset, true);
      const d = decode(word);
      const where = `'${e.text}' at +${offset} (0x${d.raw.toString(16)}, decoded as '${disassemble(d)}')`;
      assert.equal(OPCODE_NAMES[d.op], OPCODE_NAMES[e.op], where);
      // gas swaps the sources of a commutative operation to compress it (xor a4,a0,a4 → c.xor a4,a0).
      const swapped = d.len === 2 && COMMUTATIVE.has(d.op) && d.rs1 === e.rs2 && d.rs2 === e.rs1;
      assert.deepEqual(
        [d.rd, swapped ? d.rs2 : d.rs1, swapped ? d.rs1 : d.rs2, d.rs3, d.imm, e.rm === undefined ? undefined : d.rm],
        [e.rd, e.rs1, e.rs2, e.rs3, e.imm, e.rm],
        where,
      );
      if (d.len === 2) compressed++;
      offset += d.len;
    }
    assert.equal(offset, text.length, 'decoded lengths cover the whole text');
    if (rvc) assert.ok(compressed > 20, `gas compressed only ${compressed} instructions`);
  } finally {
    await cleanup();
  }
}

test('every table entry round-trips through the GNU assembler (RV64GC: compressed forms expand to the same fields)', async () => {
  await roundTrip('rv64gc_zba_zbb_zbs', true, 1);
  await roundTrip('rv64gc_zba_zbb_zbs', true, 2);
});

test('every table entry round-trips through the GNU assembler without RVC', async () => {
  await roundTrip('rv64imafd_zicsr_zifencei_zba_zbb_zbs', false, 3);
});

/** Every RVC instruction (explicit c. mnemonics) next to the 32-bit instruction it stands for. */
const RVC_PAIRS: readonly (readonly [string, string])[] = [
  ['c.addi4spn x8,x2,1020', 'addi x8,x2,1020'],
  ['c.addi4spn x15,x2,4', 'addi x15,x2,4'],
  ['c.fld f8,248(x15)', 'fld f8,248(x15)'],
  ['c.lw x9,124(x10)', 'lw x9,124(x10)'],
  ['c.lw x9,4(x10)', 'lw x9,4(x10)'],
  ['c.ld x11,248(x12)', 'ld x11,248(x12)'],
  ['c.fsd f9,8(x8)', 'fsd f9,8(x8)'],
  ['c.sw x13,64(x14)', 'sw x13,64(x14)'],
  ['c.sd x15,128(x8)', 'sd x15,128(x8)'],
  ['c.nop', 'addi x0,x0,0'],
  ['c.addi x5,-32', 'addi x5,x5,-32'],
  ['c.addi x31,31', 'addi x31,x31,31'],
  ['c.addiw x6,-1', 'addiw x6,x6,-1'],
  ['c.li x7,-32', 'addi x7,x0,-32'],
  ['c.addi16sp x2,-512', 'addi x2,x2,-512'],
  ['c.addi16sp x2,496', 'addi x2,x2,496'],
  ['c.lui x9,0xfffe0', 'lui x9,0xfffe0'],
  ['c.lui x3,0x1f', 'lui x3,0x1f'],
  ['c.srli x8,63', 'srli x8,x8,63'],
  ['c.srai x9,1', 'srai x9,x9,1'],
  ['c.andi x10,-7', 'andi x10,x10,-7'],
  ['c.sub x11,x12', 'sub x11,x11,x12'],
  ['c.xor x13,x14', 'xor x13,x13,x14'],
  ['c.or x15,x8', 'or x15,x15,x8'],
  ['c.and x9,x10', 'and x9,x9,x10'],
  ['c.subw x11,x12', 'subw x11,x11,x12'],
  ['c.addw x13,x14', 'addw x13,x13,x14'],
  ['c.j .-2048', 'jal x0,.-2048'],
  ['c.j .+2046', 'jal x0,.+2046'],
  ['c.beqz x8,.-256', 'beq x8,x0,.-256'],
  ['c.bnez x15,.+254', 'bne x15,x0,.+254'],
  ['c.slli x20,33', 'slli x20,x20,33'],
  ['c.fldsp f20,504(x2)', 'fld f20,504(x2)'],
  ['c.lwsp x21,252(x2)', 'lw x21,252(x2)'],
  ['c.ldsp x22,504(x2)', 'ld x22,504(x2)'],
  ['c.jr x1', 'jalr x0,0(x1)'],
  ['c.mv x23,x24', 'add x23,x0,x24'],
  ['c.ebreak', 'ebreak'],
  ['c.jalr x25', 'jalr x1,0(x25)'],
  ['c.add x26,x27', 'add x26,x26,x27'],
  ['c.fsdsp f28,504(x2)', 'fsd f28,504(x2)'],
  ['c.swsp x29,252(x2)', 'sw x29,252(x2)'],
  ['c.sdsp x30,504(x2)', 'sd x30,504(x2)'],
];

test('every RVC instruction expands to the 32-bit instruction it stands for', async () => {
  const lines = (i: 0 | 1) => ['.option norelax', '.globl _start', '_start:', ...RVC_PAIRS.map((p) => `  ${p[i]}`), ''].join('\n');
  const { dir, cleanup } = await scratchDir();
  try {
    const short = (await assemble(dir, 'short', lines(0))).text;
    const long = (await assemble(dir, 'long', lines(1), 'rv64imafd_zicsr_zifencei')).text;
    assert.equal(short.length, RVC_PAIRS.length * 2);
    const sv = new DataView(short.buffer, short.byteOffset);
    const lv = new DataView(long.buffer, long.byteOffset);
    RVC_PAIRS.forEach(([c, full], i) => {
      const d = decode(sv.getUint16(i * 2, true));
      const w = lv.getUint32(i * 4, true);
      assert.equal(d.len, 2, c);
      // Branch and jump offsets are relative to each instruction's own pc, so equal fields hold.
      assert.equal(expandCompressed(d.raw), w, `${c} expands to 0x${expandCompressed(d.raw).toString(16)}, ${full} is 0x${w.toString(16)}`);
    });
  } finally {
    await cleanup();
  }
});

/**
 * A disassembly line in a form both tsemu's and objdump's reduce to: numbers
 * in decimal, targets as hex addresses, CSRs by placeholder (objdump names
 * them), objdump's comments and <symbol> annotations dropped.
 */
function normalise(line: string): string {
  const text = line.replace(/\s*(#.*|<[^>]*>)/g, '').trim();
  const space = text.indexOf(' ');
  const name = space < 0 ? text : text.slice(0, space);
  const spec = SPECS[OP[name.replace(/\.(aq|rl|aqrl)$/, '') as keyof typeof OP]]!;
  const tokens = spec.operands === '' ? [] : spec.operands.split(',');
  const parts = space < 0 ? [] : text.slice(space + 1).split(',');
  const operands = parts.map((p, i) => {
    const token = tokens[i];
    if (token === 'target') return BigInt(p.startsWith('0x') ? p : `0x${p}`).toString(16);
    if (token === 'csr') return 'csr';
    if (token === 'imm' && spec.imm === IMM.U) return p;
    return /^-?(0x[0-9a-f]+|\d+)$/.test(p) ? String(Number(p)) : p;
  });
  return [name, operands.join(',')].join(' ').trim();
}

test('the disassembler agrees with objdump on every table entry', async () => {
  const rnd = new Random(4);
  const lines: string[] = [];
  for (let op = 1; op < OPCODE_NAMES.length; op++) lines.push(randomInstruction(op, rnd).text);
  const src = ['.option norelax', '.section .text.init', '.globl _start', '_start:', ...lines.map((l) => `  ${l}`), ''].join('\n');
  const { dir, cleanup } = await scratchDir();
  try {
    const asm = await assemble(dir, 'dis', src, 'rv64imafd_zicsr_zifencei_zba_zbb_zbs');
    const view = new DataView(asm.text.buffer, asm.text.byteOffset, asm.text.byteLength);
    const listing = await objdump(asm.elf);
    assert.equal(listing.length, lines.length);
    for (const [i, [pc, name, operands]] of listing.entries()) {
      const ours = disassemble(decode(view.getUint32(i * 4, true)), pc);
      assert.equal(normalise(ours), normalise(`${name} ${operands}`), `tsemu: ${ours}; objdump: ${name} ${operands}`);
    }
  } finally {
    await cleanup();
  }
});

test('illegal, reserved and unknown encodings decode to illegal and never throw', () => {
  const cases = [
    0x00000000, // all-zero parcel
    0xffffffff, // all ones (beyond 32-bit lengths)
    0x0000, // c.addi4spn with nzuimm 0
    0x6101, // c.addi16sp with nzimm 0
    0x6001 | (5 << 7), // c.lui with nzimm 0
    0x4002, // c.lwsp rd=0
    0x8002, // c.jr x0
    0x9c41, // reserved: bit 12 set, funct2 10 in the c.subw/c.addw group
    0x8000, // quadrant 0 funct3 100: reserved
    0x02c5d553, // fadd.d with rm=5
    0x02c5e553, // fadd.d with rm=6
    0x0000007f, // 64-bit-length prefix
  ];
  for (const w of cases) {
    const d = decode(w);
    assert.equal(d.op, OP.illegal, `0x${w.toString(16)} decodes as ${OPCODE_NAMES[d.op]}`);
  }
  const rnd = new Random(7);
  const d = new Insn();
  for (let i = 0; i < 200_000; i++) decode(rnd.u32(), d);
  for (let h = 0; h < 0x10000; h++) if ((h & 3) !== 3) expandCompressed(h);
});

test('compressed forms decode with length 2 and keep their 16-bit encoding', () => {
  const d = decode(0x1141); // c.addi sp,-16
  assert.equal(OPCODE_NAMES[d.op], 'addi');
  assert.deepEqual([d.rd, d.rs1, d.imm, d.len, d.raw], [2, 2, -16, 2, 0x1141]);
  assert.equal(OPCODE_NAMES[decode(0x9002).op], 'ebreak'); // c.ebreak
  assert.equal(disassemble(decode(0x00b50063), 0x80000000n), 'beq a0,a1,0x80000000');
});

test('basic blocks end at control transfers, system instructions, the page end and the cap', () => {
  const words = new Map<number, number>();
  const put16 = (off: number, h: number) => words.set(off, h);
  const put32 = (off: number, w: number) => { put16(off, w & 0xffff); put16(off + 2, w >>> 16); };
  put32(0, 0x00c58533); // add
  put16(4, 0x050d); // c.addi
  put32(6, 0x00b50063); // beq
  put32(10, 0x00c58533);
  const fetch = (base: number) => (off: number) => words.get(base + off) ?? 0;
  const b = decodeBlock(0x80000000, 0, fetch(0));
  assert.deepEqual(b.insns.map((i) => OPCODE_NAMES[i.op]), ['add', 'addi', 'beq']);
  assert.deepEqual(b.offsets, [0, 4, 6]);
  assert.equal(b.bytes, 10);
  // At the page end: a 4-byte instruction at 0xffe is not taken.
  const tail = decodeBlock(0x80000ffa, 0, (off) => (off === 0 ? 0x050d : off === 2 ? 0x050d : 0x8533));
  assert.deepEqual(tail.insns.map((i) => OPCODE_NAMES[i.op]), ['addi', 'addi']);
  assert.equal(tail.bytes, 4);
  assert.equal(decodeBlock(0x80000ffe, 0, () => 0x8533).insns.length, 0);
  // The cap.
  assert.equal(decodeBlock(0x80000000, 0, () => 0x050d, 10).insns.length, 10);
  // csrrw ends a block.
  assert.equal(decodeBlock(0x80000000, 0, (off) => (off === 0 ? 0x9573 : 0x3005)).insns.length, 1);
});
