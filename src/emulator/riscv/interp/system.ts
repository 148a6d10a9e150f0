/**
 * Interpreter handlers for everything that needs the privileged architecture
 * or the FPU: CSR accesses, ecall/ebreak/mret/sret/wfi/sfence.vma, fences,
 * and the FP operations other than loads and stores (H3's executeFp, after
 * HartServices.fpEnabled()). Each of them ends the block (END/JUMP), except
 * fence and FP operations, which just continue.
 *
 * INSTRET: the engine counts retired instructions per block and flushes the
 * count before a CSR instruction (interpreter.ts), so reading instret sees
 * every instruction before it.
 */
import type { Insn } from '../isa/decode.js';
import { OPCODE_NAMES, SPECS, type Mnemonic } from '../isa/table.js';
import { executeFp, FP_DIRTY, FP_ILLEGAL } from '../fpu/execute.js';
import { type Core, type Handler, END, JUMP, NEXT, STOP, TRAP } from './core.js';

/** csrrw/csrrs/csrrc (kind 0/1/2) with a register or (immediate forms) the 5-bit uimm in rs1. */
function csr(kind: 0 | 1 | 2, immediate: boolean): Handler {
  return (c, d) => {
    c.syncPc();
    const m = c.m;
    m[c.scratchw] = immediate ? d.rs1 : c.lo(d.rs1);
    m[c.scratchw + 1] = immediate ? 0 : c.hi(d.rs1);
    const writes = kind === 0 || d.rs1 !== 0;
    if (!c.hart.csrAccess(d.imm, kind, writes, d.raw)) return TRAP;
    c.set(d.rd, m[c.scratchw]!, m[c.scratchw + 1]!);
    return END;
  };
}

/** An instruction whose service sets PC itself when it succeeds (mret, sret, an SBI-served ecall). */
function returning(call: (c: Core, d: Insn) => boolean): Handler {
  return (c, d) => {
    c.syncPc();
    if (!call(c, d)) return TRAP;
    c.nextLo = c.m[c.pcw]!;
    c.nextHi = c.m[c.pcw + 1]!;
    return JUMP;
  };
}

function fp(c: Core, d: Insn): number {
  if (!c.hart.fpEnabled()) return c.illegal(d.raw);
  const r = executeFp(c.m, c.hart.stateBase, d.op, d.rd, d.rs1, d.rs2, d.rs3, d.rm);
  if (r === FP_ILLEGAL) return c.illegal(d.raw);
  if (r === FP_DIRTY) c.hart.fpDirty();
  return NEXT;
}

function fpHandlers(): Partial<Record<Mnemonic, Handler>> {
  const out: Partial<Record<string, Handler>> = {};
  SPECS.forEach((spec, op) => {
    if (spec?.kind === 'fp') out[OPCODE_NAMES[op]!] = fp;
  });
  return out;
}

export const SYSTEM_HANDLERS: Partial<Record<Mnemonic, Handler>> = {
  csrrw: csr(0, false),
  csrrs: csr(1, false),
  csrrc: csr(2, false),
  csrrwi: csr(0, true),
  csrrsi: csr(1, true),
  csrrci: csr(2, true),
  ecall: returning((c) => c.hart.ecall()),
  ebreak: (c) => {
    c.syncPc();
    c.hart.ebreak();
    return TRAP;
  },
  mret: returning((c, d) => c.hart.mret(d.raw)),
  sret: returning((c, d) => c.hart.sret(d.raw)),
  wfi: (c, d) => {
    c.syncPc();
    return c.hart.wfi(d.raw) ? STOP : TRAP;
  },
  'sfence.vma': (c, d) => {
    c.syncPc();
    return c.hart.sfenceVma(c.lo(d.rs1), c.hi(d.rs1), d.rs1 !== 0, c.lo(d.rs2), d.rs2 !== 0, d.raw) ? END : TRAP;
  },
  fence: () => NEXT,
  'fence.i': (c) => {
    c.hart.fenceI();
    return END;
  },
  ...fpHandlers(),
};
