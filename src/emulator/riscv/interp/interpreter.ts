/**
 * The interpreter: the 'interp' engine (QEMU's TCI analogue), the fallback of
 * the JIT for cold code, and the oracle of the differential tests.
 *
 * Theory of operation. step() runs one basic block: it translates PC through
 * the fetch TLB (HartServices.fetchHost on a miss; a fetch fault has already
 * moved PC to the handler), then decodes and executes instructions in place
 * until one ends the block (isa/table.ts endsBlock), the pc leaves the page,
 * MAX_BLOCK_INSNS ran, or an instruction traps. Decoding goes through a
 * direct-mapped cache keyed by host address that checks the cached
 * instruction's raw bits against memory on every use, so self-modifying code
 * and remapped pages need no invalidation. A 4-byte instruction that straddles
 * a page end fetches its second half through the next page's translation and
 * is a block of its own. Handlers (alu.ts, memory.ts, system.ts) do the work;
 * this loop keeps the pc in locals and writes PC back when the block ends.
 *
 * run(budget) repeats step() until the budget is spent, EXIT_REQUEST is set
 * (cleared, then checkInterrupts), or a wfi retired. A loop of faulting
 * fetches still spends the budget (each block attempt counts), so run()
 * always returns.
 *
 * INSTRET is advanced at the end of each block, and before a CSR instruction
 * so that reading instret sees every earlier instruction.
 */
import type { Engine } from '../engine.js';
import type { HartServices } from '../hart-api.js';
import { TLB_FETCH } from '../layout.js';
import { decode, Insn } from '../isa/decode.js';
import { MAX_BLOCK_INSNS } from '../isa/block.js';
import { KIND_OF, OPCODE_NAMES, type Mnemonic } from '../isa/table.js';
import { ALU_HANDLERS } from './alu.js';
import { Core, type Handler, JUMP, NEXT, STOP, TRAP } from './core.js';
import { MEMORY_HANDLERS } from './memory.js';
import { SYSTEM_HANDLERS } from './system.js';

const DECODE_CACHE_SIZE = 1 << 14;
const PAGE_MASK = 0xfff;

const illegal: Handler = (c, d) => c.illegal(d.raw);

/** Handlers by opcode number; every opcode has one (an unknown one raises illegal instruction). */
export const HANDLERS: readonly Handler[] = OPCODE_NAMES.map(
  (name) => ALU_HANDLERS[name as Mnemonic] ?? MEMORY_HANDLERS[name as Mnemonic] ?? SYSTEM_HANDLERS[name as Mnemonic] ?? illegal,
);

const IS_CSR: Uint8Array = Uint8Array.from(KIND_OF, (k) => (k === 'csr' ? 1 : 0));

export class Interpreter implements Engine {
  private readonly core: Core;
  private readonly cacheTags = new Int32Array(DECODE_CACHE_SIZE).fill(-1);
  private readonly cacheInsns: Insn[] = Array.from({ length: DECODE_CACHE_SIZE }, () => new Insn());
  /** Scratch decoded form for page-straddling instructions (not cached). */
  private readonly straddling = new Insn();
  /**
   * True when the last step() retired a wfi: whoever drives step() (run(),
   * the JIT's dispatcher) should return to the vCPU loop, which may sleep.
   */
  wfiRetired = false;

  constructor(private readonly hart: HartServices) {
    this.core = new Core(hart);
  }

  run(budget: number): number {
    const c = this.core;
    let retired = 0;
    for (let attempts = 0; retired < budget && attempts < budget; attempts++) {
      if (Atomics.load(c.m, c.exitw) !== 0) {
        Atomics.store(c.m, c.exitw, 0);
        this.hart.checkInterrupts();
        break;
      }
      retired += this.step();
      if (this.wfiRetired) break;
    }
    return retired;
  }

  /** Runs one block (or one page-straddling instruction); returns the instructions retired. */
  step(): number {
    const c = this.core;
    const m = c.m;
    let pcLo = m[c.pcw]!;
    let pcHi = m[c.pcw + 1]!;
    this.wfiRetired = false;
    let host = this.fetchHost(pcLo, pcHi);
    if (host < 0) return 0;
    let retired = 0;
    let counted = 0;
    for (;;) {
      c.pcLo = pcLo;
      c.pcHi = pcHi;
      const d = this.decodeAt(host, pcLo, pcHi);
      if (d === undefined) break; // the second half's fetch trapped
      if (IS_CSR[d.op] === 1) {
        c.retire(retired - counted);
        counted = retired;
      }
      const status = HANDLERS[d.op]!(c, d);
      if (status === TRAP) break;
      retired++;
      if (status === JUMP) {
        m[c.pcw] = c.nextLo;
        m[c.pcw + 1] = c.nextHi;
        break;
      }
      const next = (pcLo + d.len) | 0;
      if (next >>> 0 < pcLo >>> 0) pcHi = (pcHi + 1) | 0;
      pcLo = next;
      host += d.len;
      if (status !== NEXT || (pcLo & PAGE_MASK) < d.len || d === this.straddling || retired >= MAX_BLOCK_INSNS) {
        m[c.pcw] = pcLo;
        m[c.pcw + 1] = pcHi;
        if (status === STOP) this.wfiRetired = true;
        break;
      }
    }
    c.retire(retired - counted);
    return retired;
  }

  /** Host offset of the parcel at va through the fetch TLB, else HartServices.fetchHost; -1 when the fetch trapped. */
  private fetchHost(lo: number, hi: number): number {
    const m = this.core.m;
    const vpnLo = (lo >>> 12) | (hi << 20);
    const w = this.core.tlbEntry(TLB_FETCH, lo);
    if (m[w] === vpnLo && m[w + 1] === hi >>> 12) return (lo + m[w + 2]!) >>> 0;
    return this.hart.fetchHost(lo, hi);
  }

  /** The decoded instruction at host offset `host` (pc = lo, hi); undefined when fetching its second half trapped. */
  private decodeAt(host: number, lo: number, hi: number): Insn | undefined {
    const u16 = this.core.u16;
    const low = u16[host >>> 1]!;
    let raw = low;
    if ((low & 3) === 3) {
      if ((lo & PAGE_MASK) === PAGE_MASK - 1) return this.decodeStraddling(low, lo, hi);
      raw = (low | (u16[(host >>> 1) + 1]! << 16)) >>> 0;
    }
    const i = (host >>> 1) & (DECODE_CACHE_SIZE - 1);
    const cached = this.cacheInsns[i]!;
    if (this.cacheTags[i] === (host | 0) && cached.raw === raw) return cached;
    this.cacheTags[i] = host | 0;
    return decode(raw, cached);
  }

  private decodeStraddling(low: number, lo: number, hi: number): Insn | undefined {
    const nextLo = (lo + 2) | 0;
    const nextHi = nextLo >>> 0 < lo >>> 0 ? (hi + 1) | 0 : hi;
    this.core.syncPc();
    const host = this.fetchHost(nextLo, nextHi);
    if (host < 0) return undefined;
    return decode((low | (this.core.u16[host >>> 1]! << 16)) >>> 0, this.straddling);
  }
}
