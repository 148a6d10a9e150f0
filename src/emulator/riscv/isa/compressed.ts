/**
 * RVC expansion: turns a 16-bit compressed instruction (RV64C, with the F/D
 * load/store forms) into the 32-bit instruction it stands for, so the rest of
 * tsemu knows one instruction set. Reserved encodings and the all-zero parcel
 * expand to 0, which decodes as 'illegal'. HINT encodings (writes to x0, zero
 * shift amounts) expand to their 32-bit forms, which do nothing.
 *
 * Field positions follow the RVC chapter of the unprivileged ISA manual:
 * rd'/rs1'/rs2' are 3-bit fields naming x8..x15 (or f8..f15).
 */

const OP_LOAD = 0x03;
const OP_LOAD_FP = 0x07;
const OP_IMM = 0x13;
const OP_IMM_32 = 0x1b;
const OP_STORE = 0x23;
const OP_STORE_FP = 0x27;
const OP_REG = 0x33;
const OP_LUI = 0x37;
const OP_REG_32 = 0x3b;
const OP_BRANCH = 0x63;
const OP_JALR = 0x67;
const OP_JAL = 0x6f;
const EBREAK = 0x00100073;

function encI(opcode: number, rd: number, funct3: number, rs1: number, imm: number): number {
  return (((imm & 0xfff) << 20) | (rs1 << 15) | (funct3 << 12) | (rd << 7) | opcode) >>> 0;
}

function encS(opcode: number, funct3: number, rs1: number, rs2: number, imm: number): number {
  return ((((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (funct3 << 12) | ((imm & 0x1f) << 7) | opcode) >>> 0;
}

function encR(opcode: number, rd: number, funct3: number, rs1: number, rs2: number, funct7: number): number {
  return ((funct7 << 25) | (rs2 << 20) | (rs1 << 15) | (funct3 << 12) | (rd << 7) | opcode) >>> 0;
}

function encB(funct3: number, rs1: number, rs2: number, imm: number): number {
  return (
    ((((imm >> 12) & 1) << 31) |
      (((imm >> 5) & 0x3f) << 25) |
      (rs2 << 20) |
      (rs1 << 15) |
      (funct3 << 12) |
      (((imm >> 1) & 0xf) << 8) |
      (((imm >> 11) & 1) << 7) |
      OP_BRANCH) >>>
    0
  );
}

function encJ(rd: number, imm: number): number {
  return (
    ((((imm >> 20) & 1) << 31) |
      (((imm >> 1) & 0x3ff) << 21) |
      (((imm >> 11) & 1) << 20) |
      (((imm >> 12) & 0xff) << 12) |
      (rd << 7) |
      OP_JAL) >>>
    0
  );
}

/** Bit `from` of h moved to bit `to`. */
function bit(h: number, from: number, to: number): number {
  return ((h >>> from) & 1) << to;
}

/** Sign-extends the low `bits` bits of v. */
function sext(v: number, bits: number): number {
  const shift = 32 - bits;
  return (v << shift) >> shift;
}

/** The 6-bit immediate of CI forms: imm[5] = bit 12, imm[4:0] = bits 6:2. */
function ciImm(h: number): number {
  return sext(bit(h, 12, 5) | ((h >>> 2) & 0x1f), 6);
}

/** Offsets scaled by 8 (c.ld, c.sd, c.fld, c.fsd): uimm[5:3] = bits 12:10, uimm[7:6] = bits 6:5. */
function clOffset8(h: number): number {
  return (((h >>> 10) & 7) << 3) | (((h >>> 5) & 3) << 6);
}

/** Offsets scaled by 4 (c.lw, c.sw): uimm[5:3] = bits 12:10, uimm[2] = bit 6, uimm[6] = bit 5. */
function clOffset4(h: number): number {
  return (((h >>> 10) & 7) << 3) | bit(h, 6, 2) | bit(h, 5, 6);
}

function cjOffset(h: number): number {
  const v =
    bit(h, 12, 11) | bit(h, 11, 4) | (((h >>> 9) & 3) << 8) | bit(h, 8, 10) | bit(h, 7, 6) | bit(h, 6, 7) | (((h >>> 3) & 7) << 1) | bit(h, 2, 5);
  return sext(v, 12);
}

function cbOffset(h: number): number {
  const v = bit(h, 12, 8) | (((h >>> 10) & 3) << 3) | (((h >>> 5) & 3) << 6) | (((h >>> 3) & 3) << 1) | bit(h, 2, 5);
  return sext(v, 9);
}

function quadrant0(h: number): number {
  const rdp = 8 + ((h >>> 2) & 7);
  const rs1p = 8 + ((h >>> 7) & 7);
  switch (h >>> 13) {
    case 0: {
      // c.addi4spn: nzuimm[5:4|9:6|2|3] in bits 12:5
      const imm = (((h >>> 11) & 3) << 4) | (((h >>> 7) & 0xf) << 6) | bit(h, 6, 2) | bit(h, 5, 3);
      return imm === 0 ? 0 : encI(OP_IMM, rdp, 0, 2, imm);
    }
    case 1:
      return encI(OP_LOAD_FP, rdp, 3, rs1p, clOffset8(h)); // c.fld
    case 2:
      return encI(OP_LOAD, rdp, 2, rs1p, clOffset4(h)); // c.lw
    case 3:
      return encI(OP_LOAD, rdp, 3, rs1p, clOffset8(h)); // c.ld
    case 5:
      return encS(OP_STORE_FP, 3, rs1p, rdp, clOffset8(h)); // c.fsd
    case 6:
      return encS(OP_STORE, 2, rs1p, rdp, clOffset4(h)); // c.sw
    case 7:
      return encS(OP_STORE, 3, rs1p, rdp, clOffset8(h)); // c.sd
    default:
      return 0;
  }
}

function quadrant1(h: number): number {
  const rd = (h >>> 7) & 0x1f;
  switch (h >>> 13) {
    case 0:
      return encI(OP_IMM, rd, 0, rd, ciImm(h)); // c.addi, c.nop
    case 1:
      return rd === 0 ? 0 : encI(OP_IMM_32, rd, 0, rd, ciImm(h)); // c.addiw
    case 2:
      return encI(OP_IMM, rd, 0, 0, ciImm(h)); // c.li
    case 3: {
      if (rd === 2) {
        // c.addi16sp: nzimm[9] = bit 12, nzimm[4|6|8:7|5] = bits 6:2
        const v = bit(h, 12, 9) | bit(h, 6, 4) | bit(h, 5, 6) | (((h >>> 3) & 3) << 7) | bit(h, 2, 5);
        return v === 0 ? 0 : encI(OP_IMM, 2, 0, 2, sext(v, 10));
      }
      const imm = ciImm(h); // c.lui: nzimm[17:12]
      return imm === 0 ? 0 : ((imm << 12) | (rd << 7) | OP_LUI) >>> 0;
    }
    case 4:
      return miscAlu(h);
    case 5:
      return encJ(0, cjOffset(h)); // c.j
    case 6:
      return encB(0, 8 + ((h >>> 7) & 7), 0, cbOffset(h)); // c.beqz
    default:
      return encB(1, 8 + ((h >>> 7) & 7), 0, cbOffset(h)); // c.bnez
  }
}

function miscAlu(h: number): number {
  const rd = 8 + ((h >>> 7) & 7);
  const rs2 = 8 + ((h >>> 2) & 7);
  const shamt = bit(h, 12, 5) | ((h >>> 2) & 0x1f);
  switch ((h >>> 10) & 3) {
    case 0:
      return encI(OP_IMM, rd, 5, rd, shamt); // c.srli
    case 1:
      return encI(OP_IMM, rd, 5, rd, 0x400 | shamt); // c.srai
    case 2:
      return encI(OP_IMM, rd, 7, rd, ciImm(h)); // c.andi
  }
  const sel = (h >>> 5) & 3;
  if ((h & 0x1000) === 0) {
    // c.sub, c.xor, c.or, c.and
    const funct3 = [0, 4, 6, 7][sel]!;
    return encR(OP_REG, rd, funct3, rd, rs2, sel === 0 ? 0x20 : 0);
  }
  if (sel === 0) return encR(OP_REG_32, rd, 0, rd, rs2, 0x20); // c.subw
  if (sel === 1) return encR(OP_REG_32, rd, 0, rd, rs2, 0); // c.addw
  return 0;
}

function quadrant2(h: number): number {
  const rd = (h >>> 7) & 0x1f;
  const rs2 = (h >>> 2) & 0x1f;
  switch (h >>> 13) {
    case 0:
      return encI(OP_IMM, rd, 1, rd, bit(h, 12, 5) | rs2); // c.slli
    case 1: // c.fldsp: uimm[5] = bit 12, uimm[4:3|8:6] = bits 6:2
      return encI(OP_LOAD_FP, rd, 3, 2, bit(h, 12, 5) | (((h >>> 5) & 3) << 3) | (((h >>> 2) & 7) << 6));
    case 2: // c.lwsp: uimm[5] = bit 12, uimm[4:2|7:6] = bits 6:2
      return rd === 0 ? 0 : encI(OP_LOAD, rd, 2, 2, bit(h, 12, 5) | (((h >>> 4) & 7) << 2) | (((h >>> 2) & 3) << 6));
    case 3: // c.ldsp
      return rd === 0 ? 0 : encI(OP_LOAD, rd, 3, 2, bit(h, 12, 5) | (((h >>> 5) & 3) << 3) | (((h >>> 2) & 7) << 6));
    case 4:
      if ((h & 0x1000) === 0) {
        if (rs2 === 0) return rd === 0 ? 0 : encI(OP_JALR, 0, 0, rd, 0); // c.jr
        return encR(OP_REG, rd, 0, 0, rs2, 0); // c.mv
      }
      if (rs2 === 0) return rd === 0 ? EBREAK : encI(OP_JALR, 1, 0, rd, 0); // c.ebreak, c.jalr
      return encR(OP_REG, rd, 0, rd, rs2, 0); // c.add
    case 5: // c.fsdsp: uimm[5:3|8:6] = bits 12:7
      return encS(OP_STORE_FP, 3, 2, rs2, (((h >>> 10) & 7) << 3) | (((h >>> 7) & 7) << 6));
    case 6: // c.swsp: uimm[5:2|7:6] = bits 12:7
      return encS(OP_STORE, 2, 2, rs2, (((h >>> 9) & 0xf) << 2) | (((h >>> 7) & 3) << 6));
    default: // c.sdsp
      return encS(OP_STORE, 3, 2, rs2, (((h >>> 10) & 7) << 3) | (((h >>> 7) & 7) << 6));
  }
}

/** The 32-bit instruction a 16-bit parcel (low two bits not 11) stands for; 0 when reserved or illegal. */
export function expandCompressed(parcel: number): number {
  const h = parcel & 0xffff;
  switch (h & 3) {
    case 0:
      return quadrant0(h);
    case 1:
      return quadrant1(h);
    case 2:
      return quadrant2(h);
    default:
      return 0;
  }
}
