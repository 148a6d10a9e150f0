/**
 * The JIT's hub: the one small WebAssembly instance per hart that holds the
 * hart's block table, the two ways into and between translated blocks, and
 * the function that fills the table's vacant slots.
 *
 * Theory of operation. Translated blocks live in batch modules
 * (batch-module.ts) that do not import the table: on Node 20's V8 every
 * table write costs time for each instance that imports the table, so with
 * the table imported by every batch a boot spent most of its instantiation
 * time updating the copies of earlier batches. Here only the hub imports it;
 * a batch exports its block functions and the code cache writes them into
 * their slots with Table.set. A slot with no translation holds `vacant`,
 * never null, so `leave` tail-calls any slot without looking at it first
 * (table.get of a funcref is a call into V8 that may allocate). The hub exports:
 *
 *   enter(slot, host) → i32   the dispatcher's entry: calls the block in `slot`
 *                             with PC from the state block (no i64 crosses into JS)
 *   leave(next, host, slot) → i32   where every block exit goes (batch modules
 *                             import it and tail-call it): SLOT_INTERPRET stores
 *                             `next` into PC and returns 1 (the engine interprets
 *                             there); otherwise, if budget remains (JIT_BUDGET)
 *                             and EXIT_REQUEST is clear, it tail-calls `slot`
 *                             (a constant same-page target) or, for SLOT_JUMP,
 *                             translates `next` through the fetch TLB and
 *                             tail-calls the slot the jump cache (layout.ts
 *                             jumpCacheBase) holds for its host offset (0 when
 *                             none); else it stores `next` into PC and returns 0
 *                             to the dispatcher
 *   vacant(pc, host) → i32    what a slot without a translation (slot 0 too)
 *                             holds: stores `pc` into PC and returns 0
 *
 * A block function has the type (pc: i64, host: i32) → i32 (BLOCK_TYPE).
 */
import { MemOp, ModuleBuilder, Op, Type, type Code } from '../../wasm/encoder.js';
import { HS, JUMP_CACHE_FOLD, JUMP_CACHE_SIZE, TLB_ENTRIES, TLB_ENTRY_SIZE, TLB_FETCH, TLB_FOLD } from '../layout.js';

const { i32, i64 } = Type;

/** The JIT's budget word (layout.ts HS.JIT_BUDGET): instructions the hart may still run before returning to the dispatcher. */
export const JIT_BUDGET = HS.JIT_BUDGET;

/** `slot` arguments of `leave` that are not table slots. */
export const SLOT_JUMP = -1;
export const SLOT_INTERPRET = -3;

/** A block function's parameters and results. */
export const BLOCK_PARAMS = [i64, i32] as const;
export const BLOCK_RESULTS = [i32] as const;
/** `leave`'s parameters and results. */
export const LEAVE_PARAMS = [i64, i32, i32] as const;

/** Where a hart's state block (whose TLB_SET word locates its TLB) and jump cache are in the shared memory. */
export interface HartAreas {
  readonly stateBase: number;
  readonly jumpCacheBase: number;
}

/**
 * Emits code that turns the low word of a page number (i32, on the stack) into the byte offset of
 * its entry in a TLB table (layout.ts tlbIndex * TLB_ENTRY_SIZE); add the current set's offset (the
 * TLB_SET word) and a table's (TLB_LOAD, TLB_STORE, TLB_FETCH). `tmp` is an i32 local.
 */
export function emitTlbSlot(c: Code, tmp: number): void {
  c.tee(tmp).get(tmp).i32(TLB_FOLD).op(Op.i32_shr_u).op(Op.i32_xor).i32(TLB_ENTRIES - 1).op(Op.i32_and);
  c.i32(Math.log2(TLB_ENTRY_SIZE)).op(Op.i32_shl);
}

export interface Hub {
  /** The hart's block table: block functions by slot, `vacant` where there is none. */
  readonly table: WebAssembly.Table;
  /** Runs the block in `slot` (at host offset `host`) at the current PC; returns its status (0, or 1: interpret the instruction at PC). */
  readonly enter: (slot: number, host: number) => number;
  /** The exported `leave`, for the batch modules' env.leave import. */
  readonly leave: (...args: never[]) => unknown;
  /** The function of a vacant slot (for Table.set and Table.grow). */
  readonly vacant: Function;
}

/** The 4 GiB ceiling of a 32-bit memory, in pages: the import accepts any shared memory. */
export const MAX_PAGES = 65536;

/**
 * Builds the hub for the hart at `areas` with a table of `slots` vacant slots;
 * `jumpCache` false makes jumps return to the dispatcher.
 */
export function createHub(memory: WebAssembly.Memory, areas: HartAreas, jumpCache: boolean, slots: number): Hub {
  const m = new ModuleBuilder();
  m.importMemory('env', 'memory', 1, MAX_PAGES, true);
  m.importTable('env', 'table', 1);
  const blockType = m.type(BLOCK_PARAMS, BLOCK_RESULTS);
  const enter = m.func([i32, i32], [i32]);
  enter.code.i32(0).mem(MemOp.i64_load, areas.stateBase + HS.PC, 3).get(1).get(0).callIndirect(blockType);
  const leave = m.func(LEAVE_PARAMS, BLOCK_RESULTS);
  emitLeave(leave.code, blockType, areas, jumpCache);
  const vacant = m.func(BLOCK_PARAMS, BLOCK_RESULTS);
  vacant.code.i32(0).get(0).mem(MemOp.i64_store, areas.stateBase + HS.PC, 3).i32(0);
  m.exportFunction('enter', enter.index);
  m.exportFunction('leave', leave.index);
  m.exportFunction('vacant', vacant.index);
  const table = new WebAssembly.Table({ element: 'anyfunc', initial: 1 });
  const { exports } = new WebAssembly.Instance(new WebAssembly.Module(m.bytes()), { env: { memory, table } });
  const vacantFn = exports.vacant as Function;
  table.set(0, vacantFn);
  table.grow(slots - 1, vacantFn);
  return { table, enter: exports.enter as Hub['enter'], leave: exports.leave as Hub['leave'], vacant: vacantFn };
}

function emitLeave(c: Code, blockType: number, areas: HartAreas, jumpCache: boolean): void {
  const { stateBase } = areas;
  const [next, host, slot] = [0, 1, 2];
  const pcAt = stateBase + HS.PC;
  c.get(slot).i32(SLOT_INTERPRET).op(Op.i32_eq).if();
  c.i32(0).get(next).mem(MemOp.i64_store, pcAt, 3).i32(1).op(Op.return);
  c.end();
  c.i32(0).mem(MemOp.i32_load, stateBase + JIT_BUDGET, 2).i32(0).op(Op.i32_gt_s);
  c.i32(0).mem(MemOp.i32_load, stateBase + HS.EXIT_REQUEST, 2).op(Op.i32_eqz).op(Op.i32_and);
  c.if();
  if (jumpCache) {
    // SLOT_JUMP: the slot the jump cache holds for next's host offset (a fetch-TLB miss leaves SLOT_JUMP).
    const vpn = c.local(i64);
    const entry = c.local(i32);
    c.get(slot).i32(SLOT_JUMP).op(Op.i32_eq).if();
    c.get(next).i64(12).op(Op.i64_shr_u).tee(vpn).op(Op.i32_wrap_i64);
    emitTlbSlot(c, entry);
    c.i32(0).mem(MemOp.i32_load, stateBase + HS.TLB_SET, 2).op(Op.i32_add).tee(entry).mem(MemOp.i64_load, TLB_FETCH, 3).get(vpn).op(Op.i64_eq);
    c.if();
    c.get(next).op(Op.i32_wrap_i64).get(entry).mem(MemOp.i32_load, TLB_FETCH + 8, 2).op(Op.i32_add).set(host);
    // jumpCacheIndex(host) * 4
    c.get(host).i32(1).op(Op.i32_shr_u).get(host).i32(JUMP_CACHE_FOLD).op(Op.i32_shr_u).op(Op.i32_xor);
    c.i32(JUMP_CACHE_SIZE - 1).op(Op.i32_and).i32(2).op(Op.i32_shl);
    c.mem(MemOp.i32_load, areas.jumpCacheBase, 2).set(slot);
    c.end();
    c.end();
  }
  // A slot with no translation yet holds `vacant`, which returns to the dispatcher.
  c.get(slot).i32(0).op(Op.i32_ge_s).if();
  c.get(next).get(host).get(slot).returnCallIndirect(blockType);
  c.end();
  c.end();
  c.i32(0).get(next).mem(MemOp.i64_store, pcAt, 3);
  c.i32(0);
}
