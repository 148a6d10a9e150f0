/**
 * The block translator: one decoded RISC-V basic block → one WebAssembly
 * function (pc: i64, host: i32) → i32 in a batch module (batch-module.ts).
 *
 * Theory of operation. A block is keyed by the host offset of its first
 * instruction (guest-physical, see layout.ts), but its code must not depend
 * on the virtual address it runs at: the function gets its virtual pc as its
 * parameter and computes every pc (links, auipc, branch targets) as entry pc
 * + a constant offset. Guest registers the block writes or reads more than
 * once are loaded into i64 locals at entry and the written ones stored back at
 * every exit; one read once and never written is loaded from the state block
 * where it is read (no helper a block calls writes an x register, except the
 * FP executor's result register, which counts as written and is reloaded).
 *
 * Loads and stores do the software-TLB lookup inline (layout.ts): index the
 * load or store table of the current TLB set (the TLB_SET word) by tlbIndex,
 * compare the tag, require natural alignment, and on a hit access host
 * address wrap(va) + addend. A
 * miss calls the batch module's miss accessor for the access (batch-module.ts)
 * with the va and the instruction's pc, which stores the pc into PC and calls
 * HartServices.load/store; a failed access is a trap: the block writes back
 * its registers, accounts the instructions retired before the faulting one,
 * and returns (the hart has set PC to the handler).
 *
 * Exits: an exit sets the next pc, the retired count and how to continue,
 * and branches to the block's one epilogue, which writes back registers,
 * subtracts the retired count from the budget word (the engine adds what the
 * budget lost to INSTRET) and tail-calls the hub's `leave` (hub.ts).
 * If budget remains and EXIT_REQUEST is clear, execution continues in
 * WebAssembly by a tail call (pc, host) → i32:
 *   - a constant target on the same 4 KiB page (same virtual page, so the same
 *     physical page) that is translated in the same batch is tail-called
 *     directly (after the same budget and EXIT_REQUEST check);
 *   - another constant target on the same page calls the target's slot in
 *     the hart's block table (the slot is null until the target is
 *     translated: then `leave` stores PC and returns to the dispatcher);
 *   - any other target (jalr, other pages) is translated through the fetch TLB
 *     inline, and the host offset picks an entry of the jump cache, a small
 *     direct-mapped array of slots the dispatcher fills with blocks it has entered.
 * Each block starts by checking that the host it was called for is its own
 * (a jump-cache collision) and otherwise tail-calls its module's stopAt, which
 * stores PC and returns 0.
 * Exits that cannot continue store the next pc into PC and return.
 *
 * FP arithmetic calls the FPU's executor on the state block (after one
 * fpEnabled check per block); the x register it reads is written back before
 * the call and the one it writes is reloaded after it. FP_DIRTY marks the FP
 * state dirty; FP_ILLEGAL (and FP disabled) leave the block with status 1 in
 * front of the instruction, so the engine lets the interpreter raise the trap.
 *
 * LR/SC and AMOs call the hart's helpers (operand in SCRATCH0, result in
 * SCRATCH0, or SCRATCH1 for sc), with the trap protocol of the slow paths.
 *
 * CSR instructions (which end blocks) call the engine's CSR access with the
 * operand in SCRATCH0 and the block's instructions before them (so INSTRET is
 * exact); the old value comes back in SCRATCH0. After a CSR write the block
 * leaves through the jump path (fetch TLB and jump cache, EXIT_REQUEST
 * checked), never a constant same-page slot: the write may have changed the
 * translation context, enabled an interrupt or switched the FPU off.
 *
 * Limits: system instructions (ecall, xRET, wfi, sfence.vma) and fence.i are
 * not translated; they end blocks anyway, so a block stops in front of one
 * (translatableLength) and the engine runs it alone on the interpreter.
 */
import { MemOp, Op, Type, type Code } from '../../wasm/encoder.js';
import { type Insn, KIND_OF, OP, OPCODE_NAMES, SPECS } from '../isa/index.js';
import type { AmoOp } from '../hart-api.js';
import { FP_DIRTY, FP_ILLEGAL } from '../fpu/execute.js';
import { HS, TLB_LOAD, TLB_STORE } from '../layout.js';
import { AMO_OPS, LOAD_KINDS, type BatchFunctions, type LoadKind } from './batch-module.js';
import { JIT_BUDGET, SLOT_INTERPRET, SLOT_JUMP, emitTlbSlot } from './hub.js';


const { i32, i64 } = Type;

/** What the translator needs to know about the hart and the block's place. */
export interface BlockContext {
  /** Hart state block offset in the shared memory (its TLB_SET word locates the software TLB). */
  readonly stateBase: number;
  /** Host offset of the block's first instruction (its key). */
  readonly host: number;
  /** Table slot of the block starting at a host offset on the same page; undefined: do not chain there. */
  slotFor(host: number): number | undefined;
  /**
   * Index of the function in the same module that translates the block at a
   * host offset on the same page, if any: exits there tail-call it directly
   * (a page is invalidated as a whole, so the two never outlive each other).
   */
  functionFor?(host: number): number | undefined;
}

/**
 * The host offsets on the block's own page that translateBlock may ask
 * ctx.slotFor about (branch and jal targets, fall-throughs, the block's end),
 * so a caller can resolve them before translation happens elsewhere.
 */
export function chainTargets(host: number, insns: readonly Insn[], offsets: readonly number[], bytes: number): number[] {
  const out = [host + bytes];
  insns.forEach((insn, i) => {
    const kind = KIND_OF[insn.op];
    if (kind === 'branch' || insn.op === OP.jal) out.push(host + offsets[i]! + insn.imm);
    if (kind === 'branch' || kind === 'csr') out.push(host + offsets[i]! + insn.len);
  });
  return out.filter((target) => ((target ^ host) & ~0xfff) === 0);
}

/** Number of leading instructions of `insns` the translator handles (0: none, run it on the interpreter). */
export function translatableLength(insns: readonly Insn[]): number {
  let n = 0;
  while (n < insns.length && isTranslatable(insns[n]!)) n++;
  return n;
}

function isTranslatable(insn: Insn): boolean {
  const kind = KIND_OF[insn.op];
  if (kind === 'alu') return LOWERED_ALU.has(insn.op);
  return kind === 'branch' || kind === 'jump' || kind === 'load' || kind === 'store'
    || kind === 'fload' || kind === 'fstore' || kind === 'fence' || kind === 'fp' || kind === 'atomic' || kind === 'csr';
}

/** Each load's kind (batch-module.ts LOAD_KINDS); FP loads move raw bits. */
const LOADS: Record<number, LoadKind> = {
  [OP.lb]: 's1', [OP.lh]: 's2', [OP.lw]: 's4', [OP.ld]: '8', [OP.lbu]: 'u1', [OP.lhu]: 'u2', [OP.lwu]: 'u4',
  [OP.flw]: 'u4', [OP.fld]: '8',
};

const STORES: Record<number, { op: number; size: number }> = {
  [OP.sb]: { op: MemOp.i64_store8, size: 1 },
  [OP.sh]: { op: MemOp.i64_store16, size: 2 },
  [OP.sw]: { op: MemOp.i64_store32, size: 4 },
  [OP.sd]: { op: MemOp.i64_store, size: 8 },
  [OP.fsw]: { op: MemOp.i64_store32, size: 4 },
  [OP.fsd]: { op: MemOp.i64_store, size: 8 },
};

/** Two-operand register ops that are one wasm i64 instruction. */
const SIMPLE_R: Record<number, number> = {
  [OP.add]: Op.i64_add, [OP.sub]: Op.i64_sub, [OP.xor]: Op.i64_xor, [OP.or]: Op.i64_or, [OP.and]: Op.i64_and,
  [OP.sll]: Op.i64_shl, [OP.srl]: Op.i64_shr_u, [OP.sra]: Op.i64_shr_s, [OP.mul]: Op.i64_mul,
  [OP.rol]: Op.i64_rotl, [OP.ror]: Op.i64_rotr,
};
/** Immediate forms of the same. */
const SIMPLE_I: Record<number, number> = {
  [OP.addi]: Op.i64_add, [OP.xori]: Op.i64_xor, [OP.ori]: Op.i64_or, [OP.andi]: Op.i64_and,
  [OP.slli]: Op.i64_shl, [OP.srli]: Op.i64_shr_u, [OP.srai]: Op.i64_shr_s, [OP.rori]: Op.i64_rotr,
};
/** Comparisons producing 0/1. */
const COMPARE: Record<number, number> = {
  [OP.slt]: Op.i64_lt_s, [OP.sltu]: Op.i64_lt_u, [OP.slti]: Op.i64_lt_s, [OP.sltiu]: Op.i64_lt_u,
};
/** 32-bit ops whose result is sign-extended: i32 op over the low halves. */
const WORD_R: Record<number, number> = {
  [OP.addw]: Op.i32_add, [OP.subw]: Op.i32_sub, [OP.sllw]: Op.i32_shl, [OP.srlw]: Op.i32_shr_u,
  [OP.sraw]: Op.i32_shr_s, [OP.mulw]: Op.i32_mul, [OP.rolw]: Op.i32_rotl, [OP.rorw]: Op.i32_rotr,
};
const WORD_I: Record<number, number> = {
  [OP.addiw]: Op.i32_add, [OP.slliw]: Op.i32_shl, [OP.srliw]: Op.i32_shr_u, [OP.sraiw]: Op.i32_shr_s,
  [OP.roriw]: Op.i32_rotr,
};
/** ALU instructions aluOther lowers. */
const OTHER_ALU: readonly number[] = [
  OP.lui, OP.auipc, OP.mulh, OP.mulhsu, OP.mulhu, OP.div, OP.divu, OP.rem, OP.remu, OP.divw, OP.remw, OP.divuw,
  OP.remuw, OP['add.uw'], OP.sh1add, OP.sh2add, OP.sh3add, OP['sh1add.uw'], OP['sh2add.uw'], OP['sh3add.uw'],
  OP['slli.uw'], OP.andn, OP.orn, OP.xnor, OP.clz, OP.ctz, OP.cpop, OP.clzw, OP.ctzw, OP.cpopw, OP.max, OP.min,
  OP.maxu, OP.minu, OP['sext.b'], OP['sext.h'], OP['zext.h'], OP.bclr, OP.bclri, OP.bset, OP.bseti, OP.binv,
  OP.binvi, OP.bext, OP.bexti, OP['orc.b'], OP.rev8,
];
/** Every ALU opcode the translator lowers (an 'alu' opcode added to the table later is left to the interpreter). */
const LOWERED_ALU: ReadonlySet<number> = new Set([
  ...Object.keys(SIMPLE_R), ...Object.keys(SIMPLE_I), ...Object.keys(COMPARE), ...Object.keys(WORD_R),
  ...Object.keys(WORD_I),
].map(Number).concat(OTHER_ALU));

const BRANCH: Record<number, number> = {
  [OP.beq]: Op.i64_eq, [OP.bne]: Op.i64_ne, [OP.blt]: Op.i64_lt_s, [OP.bge]: Op.i64_ge_s,
  [OP.bltu]: Op.i64_lt_u, [OP.bgeu]: Op.i64_ge_u,
};

/**
 * Emits the block's function body into `code` (a fresh () → i32 function).
 * `insns`/`offsets` are the translatable prefix of a decoded block; `bytes` is
 * the offset just past its last instruction.
 */
export function translateBlock(
  code: Code, fns: BatchFunctions, ctx: BlockContext,
  insns: readonly Insn[], offsets: readonly number[], bytes: number,
): void {
  new BlockTranslator(code, fns, ctx, insns, offsets).emit(bytes);
}

/** Whether an FP instruction reads x[rs1] / writes x[rd] (by its operand syntax in the table). */
function fpIntegerOperands(op: number): { readsX: boolean; writesX: boolean } {
  const operands = SPECS[op]!.operands;
  return { readsX: /\bxs1\b/.test(operands), writesX: /^xd\b/.test(operands) };
}

/** A CSR opcode's access kind (0 csrrw, 1 csrrs, 2 csrrc) and whether rs1 holds a 5-bit immediate. */
function csrForm(op: number): { kind: 0 | 1 | 2; immediate: boolean } {
  const name = OPCODE_NAMES[op]!;
  return { kind: name.startsWith('csrrw') ? 0 : name.startsWith('csrrs') ? 1 : 2, immediate: name.endsWith('i') };
}

/** `slot` values of the epilogue that are not table slots (SLOT_JUMP and SLOT_INTERPRET: hub.ts). */
const SLOT_TRAP = -2;
/** SLOT_DIRECT - j: the j-th direct target (BlockContext.functionFor); `leave` treats it like no slot. */
const SLOT_DIRECT = -16;

class BlockTranslator {
  private readonly reg = new Array<number>(32).fill(-1);
  private readonly written = new Set<number>();
  private readonly pc0: number;
  private readonly va: number;
  private readonly vpn: number;
  private readonly entry: number;
  private readonly tmp: number;
  private readonly retired: number;
  private readonly next: number;
  private readonly nextHost: number;
  private readonly slot: number;
  /** The current TLB set's offset (the TLB_SET word, read once: nothing inside a block changes it); -1: the block has no loads or stores. */
  private readonly tlbSet: number;
  private fpChecked = false;
  /** Exits that tail-call a function of the same module directly, by index (see SLOT_DIRECT). */
  private readonly directs: { func: number; host: number }[] = [];
  /** Nesting depth of wasm blocks/ifs below the function's trap-exit block (the exit block is one further). */
  private depth = 0;

  constructor(
    private readonly c: Code,
    private readonly fns: BatchFunctions,
    private readonly ctx: BlockContext,
    private readonly insns: readonly Insn[],
    private readonly offsets: readonly number[],
  ) {
    this.pc0 = 0;
    this.va = c.local(i64);
    this.vpn = c.local(i64);
    this.tmp = c.local(i64);
    this.entry = c.local(i32);
    this.retired = c.local(i32);
    this.next = c.local(i64);
    this.nextHost = c.local(i32);
    this.slot = c.local(i32);
    const kinds = insns.map((insn) => KIND_OF[insn.op]);
    this.tlbSet = kinds.some((k) => k === 'load' || k === 'store' || k === 'fload' || k === 'fstore') ? c.local(i32) : -1;
    const reads = new Array<number>(32).fill(0);
    for (const insn of insns) this.noteRegisters(insn, reads);
    // A register read once and never written is loaded where it is read: no local to fill at entry.
    for (let r = 1; r < 32; r++) if (this.written.has(r) || reads[r]! > 1) this.reg[r] = c.local(i64);
  }

  emit(bytes: number): void {
    const c = this.c;
    c.get(1).i32(this.ctx.host).op(Op.i32_ne).if().get(0).returnCall(this.fns.stopAt).end();
    if (this.tlbSet >= 0) c.i32(0).mem(MemOp.i32_load, this.ctx.stateBase + HS.TLB_SET, 2).set(this.tlbSet);
    for (let r = 1; r < 32; r++) {
      if (this.reg[r]! >= 0) c.i32(0).mem(MemOp.i64_load, this.x(r), 3).set(this.reg[r]!);
    }
    c.block(); // $exit: `next`, `nextHost`, `slot` and `retired` describe the way out
    c.block(); // $trap: `retired` holds the faulting instruction's index
    let ended = false;
    for (let i = 0; i < this.insns.length && !ended; i++) ended = this.insn(i);
    if (!ended) this.exitTo(this.insns.length, bytes);
    c.end();
    c.i32(SLOT_TRAP).set(this.slot);
    c.end();
    this.epilogue();
  }

  /**
   * The one way out of a block: write back and account; a trap returns (the
   * hart set PC); every other exit tail-calls the module's `leave` function
   * (hub.ts) with `next`, `nextHost` and `slot`.
   */
  private epilogue(): void {
    const c = this.c;
    this.writeBack();
    const budget = this.account();
    c.get(this.slot).i32(SLOT_TRAP).op(Op.i32_eq).if().i32(0).op(Op.return).end();
    if (this.directs.length > 0) {
      // While budget remains and EXIT_REQUEST is clear; otherwise `leave` stores PC and returns (slot < 0).
      c.get(budget).i32(0).op(Op.i32_gt_s);
      c.i32(0).mem(MemOp.i32_load, this.ctx.stateBase + HS.EXIT_REQUEST, 2).op(Op.i32_eqz).op(Op.i32_and).if();
      this.directs.forEach(({ func, host }, j) => {
        c.get(this.slot).i32(SLOT_DIRECT - j).op(Op.i32_eq).if().get(this.next).i32(host).returnCall(func).end();
      });
      c.end();
    }
    c.get(this.next).get(this.nextHost).get(this.slot).returnCall(this.fns.leave);
  }

  // ---- registers ----

  /** Notes the x registers `insn` writes (in `written`) and counts those it reads (in `reads`). */
  private noteRegisters(insn: Insn, reads: number[]): void {
    const kind = KIND_OF[insn.op];
    if (kind === 'fp') {
      const { readsX, writesX } = fpIntegerOperands(insn.op);
      if (readsX) reads[insn.rs1]!++;
      if (writesX && insn.rd !== 0) this.written.add(insn.rd);
      return;
    }
    const fpDest = kind === 'fload';
    const uimm = kind === 'csr' && csrForm(insn.op).immediate;
    if (!uimm) reads[insn.rs1]!++;
    if (kind !== 'fstore') reads[insn.rs2]!++;
    if (!fpDest && insn.rd !== 0 && kind !== 'branch' && kind !== 'store' && kind !== 'fstore') this.written.add(insn.rd);
  }

  private x(r: number): number {
    return this.ctx.stateBase + HS.X + 8 * r;
  }

  private f(r: number): number {
    return this.ctx.stateBase + HS.F + 8 * r;
  }

  private get(r: number): Code {
    if (r === 0) return this.c.i64(0);
    return this.reg[r]! >= 0 ? this.c.get(this.reg[r]!) : this.c.i32(0).mem(MemOp.i64_load, this.x(r), 3);
  }

  /** Pops the value on the stack into rd (dropped for x0). */
  private put(rd: number): void {
    if (rd === 0) this.c.op(Op.drop);
    else this.c.set(this.reg[rd]!);
  }

  private writeBack(): void {
    for (const r of this.written) this.c.i32(0).get(this.reg[r]!).mem(MemOp.i64_store, this.x(r), 3);
  }

  // ---- exits ----

  private pcPlus(offset: number): Code {
    this.c.get(this.pc0);
    if (offset !== 0) this.c.i64(offset).op(Op.i64_add);
    return this.c;
  }

  /** budget -= retired; returns the local that holds the new budget. */
  private account(): number {
    const c = this.c;
    const budget = c.local(i32);
    c.i32(0).i32(0).mem(MemOp.i32_load, this.ctx.stateBase + JIT_BUDGET, 2).get(this.retired);
    c.op(Op.i32_sub).tee(budget).mem(MemOp.i32_store, this.ctx.stateBase + JIT_BUDGET, 2);
    return budget;
  }

  /** Leaves the block after `retired` instructions, continuing at entry pc + `offset`. */
  private exitTo(retired: number, offset: number): void {
    const target = this.ctx.host + offset;
    const samePage = ((target ^ this.ctx.host) & ~0xfff) === 0;
    const func = samePage ? this.ctx.functionFor?.(target) : undefined;
    if (func !== undefined) {
      let j = this.directs.findIndex((d) => d.host === target);
      if (j < 0) j = this.directs.push({ func, host: target }) - 1;
      this.pcPlus(offset).set(this.next);
      return this.leave(retired, SLOT_DIRECT - j);
    }
    const slot = samePage ? this.ctx.slotFor(target) : undefined;
    this.pcPlus(offset).set(this.next);
    if (slot !== undefined) this.c.i32(target).set(this.nextHost);
    this.leave(retired, slot ?? SLOT_JUMP);
  }

  /** Branches to the epilogue with `next` set. */
  private leave(retired: number, slot: number): void {
    this.c.i32(retired).set(this.retired).i32(slot).set(this.slot).br(this.depth + 1);
  }

  /** Leaves the block through the trap exit after instruction i faulted. */
  private trapExit(i: number): void {
    this.c.i32(i).set(this.retired).br(this.depth);
  }

  private storePc(i: number): void {
    this.c.i32(0);
    this.pcPlus(this.offsets[i]!).mem(MemOp.i64_store, this.ctx.stateBase + HS.PC, 3);
  }

  private openIf(type?: number): void {
    this.c.if(type);
    this.depth++;
  }

  private close(): void {
    this.c.end();
    this.depth--;
  }

  // ---- instructions ----

  /** Emits instruction i; true when it ended the block. */
  private insn(i: number): boolean {
    const insn = this.insns[i]!;
    const { op, rd, rs1, rs2, imm } = insn;
    const c = this.c;
    const next = this.offsets[i]! + insn.len;
    const kind = KIND_OF[op];
    if (kind === 'load' || kind === 'fload') return this.load(i), false;
    if (kind === 'store' || kind === 'fstore') return this.store(i), false;
    if (kind === 'fence') return false;
    if (kind === 'fp') return this.fpOp(i), false;
    if (kind === 'atomic') return this.atomic(i), false;
    if (kind === 'csr') return this.csr(i, next), true;
    if (kind === 'branch') {
      this.get(rs1); this.get(rs2); c.op(BRANCH[op]!);
      this.openIf();
      this.exitTo(i + 1, this.offsets[i]! + imm);
      this.close();
      this.exitTo(i + 1, next);
      return true;
    }
    if (op === OP.jal) {
      if (rd !== 0) { this.pcPlus(next); this.put(rd); }
      this.exitTo(i + 1, this.offsets[i]! + imm);
      return true;
    }
    if (op === OP.jalr) {
      this.get(rs1); c.i64(imm).op(Op.i64_add).i64(-2).op(Op.i64_and).set(this.tmp);
      if (rd !== 0) { this.pcPlus(next); this.put(rd); }
      c.get(this.tmp).set(this.next);
      this.leave(i + 1, SLOT_JUMP);
      return true;
    }
    if (rd === 0) return false; // every remaining translatable instruction is pure register arithmetic
    this.alu(insn, this.offsets[i]!);
    return false;
  }

  private alu(insn: Insn, offset: number): void {
    const { op, rd, rs1, rs2, imm } = insn;
    const c = this.c;
    let o: number | undefined;
    if ((o = SIMPLE_R[op]) !== undefined) { this.get(rs1); this.get(rs2); c.op(o); }
    else if ((o = SIMPLE_I[op]) !== undefined) { this.get(rs1); c.i64(imm); c.op(o); }
    else if ((o = COMPARE[op]) !== undefined) {
      this.get(rs1);
      if (op === OP.slt || op === OP.sltu) this.get(rs2); else c.i64(imm);
      c.op(o).op(Op.i64_extend_i32_u);
    } else if ((o = WORD_R[op]) !== undefined) {
      this.get(rs1); c.op(Op.i32_wrap_i64); this.get(rs2); c.op(Op.i32_wrap_i64); c.op(o).op(Op.i64_extend_i32_s);
    } else if ((o = WORD_I[op]) !== undefined) {
      this.get(rs1); c.op(Op.i32_wrap_i64).i32(imm).op(o).op(Op.i64_extend_i32_s);
    } else this.aluOther(insn, offset);
    this.put(rd);
  }

  /** The ALU instructions that need more than one wasm operator; pushes the result. */
  private aluOther(insn: Insn, offset: number): void {
    const { op, rs1, rs2, imm } = insn;
    const c = this.c;
    switch (op) {
      case OP.lui: c.i64(imm); return;
      case OP.auipc: this.pcPlus(offset).i64(imm).op(Op.i64_add); return;
      case OP.mulh: this.get(rs1); this.get(rs2); c.call(this.fns.mulh); return;
      case OP.mulhsu: this.get(rs1); this.get(rs2); c.call(this.fns.mulhsu); return;
      case OP.mulhu: this.get(rs1); this.get(rs2); c.call(this.fns.mulhu); return;
      case OP.div: this.get(rs1); this.get(rs2); c.call(this.fns.div); return;
      case OP.divu: this.get(rs1); this.get(rs2); c.call(this.fns.divu); return;
      case OP.rem: this.get(rs1); this.get(rs2); c.call(this.fns.rem); return;
      case OP.remu: this.get(rs1); this.get(rs2); c.call(this.fns.remu); return;
      case OP.divw: case OP.remw:
        this.sext32(rs1); this.sext32(rs2); c.call(op === OP.divw ? this.fns.div : this.fns.rem);
        c.op(Op.i32_wrap_i64).op(Op.i64_extend_i32_s); return;
      case OP.divuw: case OP.remuw:
        this.zext32(rs1); this.zext32(rs2); c.call(op === OP.divuw ? this.fns.divu : this.fns.remu);
        c.op(Op.i32_wrap_i64).op(Op.i64_extend_i32_s); return;
      case OP['add.uw']: this.zext32(rs1); this.get(rs2); c.op(Op.i64_add); return;
      case OP.sh1add: case OP.sh2add: case OP.sh3add:
        this.get(rs1); c.i64(op === OP.sh1add ? 1 : op === OP.sh2add ? 2 : 3).op(Op.i64_shl); this.get(rs2); c.op(Op.i64_add); return;
      case OP['sh1add.uw']: case OP['sh2add.uw']: case OP['sh3add.uw']:
        this.zext32(rs1); c.i64(op === OP['sh1add.uw'] ? 1 : op === OP['sh2add.uw'] ? 2 : 3).op(Op.i64_shl);
        this.get(rs2); c.op(Op.i64_add); return;
      case OP['slli.uw']: this.zext32(rs1); c.i64(imm).op(Op.i64_shl); return;
      case OP.andn: this.get(rs1); this.get(rs2); c.i64(-1).op(Op.i64_xor).op(Op.i64_and); return;
      case OP.orn: this.get(rs1); this.get(rs2); c.i64(-1).op(Op.i64_xor).op(Op.i64_or); return;
      case OP.xnor: this.get(rs1); this.get(rs2); c.op(Op.i64_xor).i64(-1).op(Op.i64_xor); return;
      case OP.clz: this.get(rs1); c.op(Op.i64_clz); return;
      case OP.ctz: this.get(rs1); c.op(Op.i64_ctz); return;
      case OP.cpop: this.get(rs1); c.op(Op.i64_popcnt); return;
      case OP.clzw: this.get(rs1); c.op(Op.i32_wrap_i64).op(Op.i32_clz).op(Op.i64_extend_i32_u); return;
      case OP.ctzw: this.get(rs1); c.op(Op.i32_wrap_i64).op(Op.i32_ctz).op(Op.i64_extend_i32_u); return;
      case OP.cpopw: this.get(rs1); c.op(Op.i32_wrap_i64).op(Op.i32_popcnt).op(Op.i64_extend_i32_u); return;
      case OP.max: case OP.min: case OP.maxu: case OP.minu: {
        const cmp = op === OP.max ? Op.i64_gt_s : op === OP.min ? Op.i64_lt_s : op === OP.maxu ? Op.i64_gt_u : Op.i64_lt_u;
        this.get(rs1); this.get(rs2); this.get(rs1); this.get(rs2); c.op(cmp).op(Op.select); return;
      }
      case OP['sext.b']: this.get(rs1); c.op(Op.i64_extend8_s); return;
      case OP['sext.h']: this.get(rs1); c.op(Op.i64_extend16_s); return;
      case OP['zext.h']: this.get(rs1); c.i64(0xffff).op(Op.i64_and); return;
      case OP.bclr: this.get(rs1); c.i64(1); this.get(rs2); c.op(Op.i64_shl); c.i64(-1).op(Op.i64_xor).op(Op.i64_and); return;
      case OP.bclri: this.get(rs1); c.i64(1).i64(imm).op(Op.i64_shl); c.i64(-1).op(Op.i64_xor).op(Op.i64_and); return;
      case OP.bset: this.get(rs1); c.i64(1); this.get(rs2); c.op(Op.i64_shl); c.op(Op.i64_or); return;
      case OP.bseti: this.get(rs1); c.i64(1).i64(imm).op(Op.i64_shl); c.op(Op.i64_or); return;
      case OP.binv: this.get(rs1); c.i64(1); this.get(rs2); c.op(Op.i64_shl); c.op(Op.i64_xor); return;
      case OP.binvi: this.get(rs1); c.i64(1).i64(imm).op(Op.i64_shl); c.op(Op.i64_xor); return;
      case OP.bext: this.get(rs1); this.get(rs2); c.op(Op.i64_shr_u).i64(1).op(Op.i64_and); return;
      case OP.bexti: this.get(rs1); c.i64(imm).op(Op.i64_shr_u).i64(1).op(Op.i64_and); return;
      case OP['orc.b']: this.orcb(rs1); return;
      case OP.rev8: this.rev8(rs1); return;
      default: throw new Error(`jit: no lowering for opcode ${op}`);
    }
  }

  /** Pushes x[r] zero-extended from 32 bits. */
  private zext32(r: number): void {
    this.get(r).i64(0xffffffff, 0).op(Op.i64_and);
  }

  /** Pushes x[r] sign-extended from 32 bits. */
  private sext32(r: number): void {
    this.get(r).op(Op.i32_wrap_i64).op(Op.i64_extend_i32_s);
  }

  /** orc.b: each byte becomes 0xff if non-zero, else 0. */
  private orcb(rs1: number): void {
    const c = this.c;
    // t = a | (a >> 1) | (a >> 2) ... within bytes, via: nz = ((a & 0x7f..) + 0x7f..) | a; high bits mark non-zero bytes
    this.get(rs1); c.i64(0x7f7f7f7f, 0x7f7f7f7f).op(Op.i64_and).i64(0x7f7f7f7f, 0x7f7f7f7f).op(Op.i64_add);
    this.get(rs1); c.op(Op.i64_or).i64(0x80808080, 0x80808080 | 0).op(Op.i64_and).set(this.tmp);
    // spread each byte's top bit over the byte: (h >> 7) * 0xff
    c.get(this.tmp).i64(7).op(Op.i64_shr_u).i64(0xff).op(Op.i64_mul);
  }

  /** rev8: byte swap of the 64-bit value. */
  private rev8(rs1: number): void {
    const c = this.c;
    this.get(rs1); c.set(this.tmp);
    c.i64(0);
    for (let k = 0; k < 8; k++) {
      c.get(this.tmp).i64(8 * k).op(Op.i64_shr_u).i64(0xff).op(Op.i64_and).i64(8 * (7 - k)).op(Op.i64_shl).op(Op.i64_or);
    }
  }

  // ---- memory ----

  /** Computes va = rs1 + imm and pushes the inline TLB hit test for `table`; leaves the entry offset in `entry`. */
  private tlbHit(insn: Insn, table: number, size: number): void {
    const c = this.c;
    this.get(insn.rs1);
    if (insn.imm !== 0) c.i64(insn.imm).op(Op.i64_add);
    c.tee(this.va).i64(12).op(Op.i64_shr_u).tee(this.vpn).op(Op.i32_wrap_i64);
    emitTlbSlot(this.c, this.entry);
    c.get(this.tlbSet).op(Op.i32_add).tee(this.entry).mem(MemOp.i64_load, table, 3).get(this.vpn).op(Op.i64_eq);
    if (size > 1) c.get(this.va).op(Op.i32_wrap_i64).i32(size - 1).op(Op.i32_and).op(Op.i32_eqz).op(Op.i32_and);
  }

  /** Pushes the host address of a TLB hit. */
  private hostAddress(table: number): void {
    this.c.get(this.va).op(Op.i32_wrap_i64).get(this.entry).mem(MemOp.i32_load, table + 8, 2).op(Op.i32_add);
  }

  /** Pushes va as (lo, hi) i32 halves. */
  private vaHalves(): void {
    this.c.get(this.va).op(Op.i32_wrap_i64).get(this.va).i64(32).op(Op.i64_shr_u).op(Op.i32_wrap_i64);
  }

  /** Pops a helper's status and takes the trap exit for instruction i when it is 0. */
  private trapUnless(i: number): void {
    this.c.op(Op.i32_eqz);
    this.openIf();
    this.trapExit(i);
    this.close();
  }

  private fpCheck(i: number): void {
    if (this.fpChecked) return;
    this.fpChecked = true;
    const c = this.c;
    c.call(this.fns.fpEnabled).op(Op.i32_eqz);
    this.openIf();
    this.toInterpreter(i);
    this.close();
  }

  /** Leaves the block in front of instruction i with status 1: the engine runs it on the interpreter. */
  private toInterpreter(i: number): void {
    this.pcPlus(this.offsets[i]!).set(this.next);
    this.leave(i, SLOT_INTERPRET);
  }

  private fpOp(i: number): void {
    const insn = this.insns[i]!;
    const c = this.c;
    const { readsX, writesX } = fpIntegerOperands(insn.op);
    this.fpCheck(i);
    if (readsX && this.reg[insn.rs1]! >= 0) c.i32(0).get(this.reg[insn.rs1]!).mem(MemOp.i64_store, this.x(insn.rs1), 3);
    c.i32(insn.op).i32(insn.rd).i32(insn.rs1).i32(insn.rs2).i32(insn.rs3).i32(insn.rm).call(this.fns.fp).tee(this.entry);
    c.i32(FP_ILLEGAL).op(Op.i32_eq);
    this.openIf();
    this.toInterpreter(i);
    this.close();
    c.get(this.entry).i32(FP_DIRTY).op(Op.i32_eq);
    this.openIf();
    c.call(this.fns.fpDirty);
    this.close();
    if (writesX && insn.rd !== 0) c.i32(0).mem(MemOp.i64_load, this.x(insn.rd), 3).set(this.reg[insn.rd]!);
  }

  /** A CSR instruction (the last of its block): the engine's helper, then the way out (see the header). */
  private csr(i: number, next: number): void {
    const insn = this.insns[i]!;
    const { kind, immediate } = csrForm(insn.op);
    const writes = kind === 0 || insn.rs1 !== 0;
    const c = this.c;
    const scratch = this.ctx.stateBase + HS.SCRATCH0;
    c.i32(0);
    if (immediate) c.i64(insn.rs1);
    else this.get(insn.rs1);
    c.mem(MemOp.i64_store, scratch, 3);
    this.storePc(i);
    c.i32(insn.imm).i32(kind).i32(writes ? 1 : 0).i32(insn.raw).i32(i).call(this.fns.csr);
    this.trapUnless(i);
    if (insn.rd !== 0) {
      c.i32(0).mem(MemOp.i64_load, scratch, 3);
      this.put(insn.rd);
    }
    if (!writes) return this.exitTo(i + 1, next);
    this.pcPlus(next).set(this.next);
    this.leave(i + 1, SLOT_JUMP);
  }

  private atomic(i: number): void {
    const insn = this.insns[i]!;
    const c = this.c;
    const name = OPCODE_NAMES[insn.op]!;
    const size = name.endsWith('.d') ? 8 : 4;
    const scratch = this.ctx.stateBase + HS.SCRATCH0;
    this.get(insn.rs1);
    c.set(this.va);
    if (!name.startsWith('lr.')) {
      c.i32(0);
      this.get(insn.rs2);
      c.mem(MemOp.i64_store, scratch, 3);
    }
    this.storePc(i);
    const amoIndex = name.startsWith('amo') ? AMO_OPS.indexOf(name.slice(3, -2) as AmoOp) : -1;
    if (amoIndex >= 0) c.i32(amoIndex);
    this.vaHalves();
    c.i32(size).call(amoIndex >= 0 ? this.fns.amo : name.startsWith('lr.') ? this.fns.lr : this.fns.sc);
    this.trapUnless(i);
    if (insn.rd !== 0) {
      c.i32(0).mem(MemOp.i64_load, name.startsWith('sc.') ? scratch + 8 : scratch, 3);
      this.put(insn.rd);
    }
  }

  private load(i: number): void {
    const insn = this.insns[i]!;
    const kind = LOADS[insn.op]!;
    const fp = KIND_OF[insn.op] === 'fload';
    const c = this.c;
    if (fp) { this.fpCheck(i); c.i32(0); }
    this.tlbHit(insn, TLB_LOAD, LOAD_KINDS[kind].size);
    this.openIf(i64);
    this.hostAddress(TLB_LOAD);
    c.mem(LOAD_KINDS[kind].op, 0, 0);
    c.else();
    c.get(this.va);
    this.pcPlus(this.offsets[i]!).call(this.fns.loadMisses[kind]);
    this.trapUnless(i);
    this.close();
    if (fp) {
      if (insn.op === OP.flw) c.i64(0, -1).op(Op.i64_or);
      c.mem(MemOp.i64_store, this.f(insn.rd), 3);
      c.call(this.fns.fpDirty);
    } else this.put(insn.rd);
  }

  /** Pushes the value a store writes: x[r], or the raw bits of f[r]. */
  private storeValue(r: number, fp: boolean): void {
    if (fp) this.c.i32(0).mem(MemOp.i64_load, this.f(r), 3);
    else this.get(r);
  }

  private store(i: number): void {
    const insn = this.insns[i]!;
    const spec = STORES[insn.op]!;
    const fp = KIND_OF[insn.op] === 'fstore';
    const c = this.c;
    if (fp) this.fpCheck(i);
    this.tlbHit(insn, TLB_STORE, spec.size);
    this.openIf();
    this.hostAddress(TLB_STORE);
    this.storeValue(insn.rs2, fp);
    c.mem(spec.op, 0, 0);
    c.else();
    c.get(this.va);
    this.storeValue(insn.rs2, fp);
    this.pcPlus(this.offsets[i]!).call(this.fns.storeMisses[spec.size as 1 | 2 | 4 | 8]);
    this.trapUnless(i);
    this.close();
  }
}
