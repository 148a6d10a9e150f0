/**
 * Atomic memory operations on the machine's shared memory for LR/SC and the
 * AMOs, atomic across vCPU threads without BigInt.
 *
 * Word (.w) operations use JS Atomics on an Int32Array. Doubleword (.d)
 * operations run in a tiny WebAssembly module assembled here byte by byte
 * (threads proposal opcodes: i64.atomic.load, i64.atomic.rmw.{add,and,or,xor,
 * xchg,cmpxchg}; min/max as a compare-and-swap loop). Operands and results
 * pass through 8-byte slots of the shared memory (the hart's SCRATCH slots),
 * so no 64-bit value ever crosses the JS boundary. All addresses are host
 * offsets in the shared memory and must be naturally aligned (the caller
 * raises the misaligned exception first).
 *
 * The WebAssembly module imports the memory as "e"."m" (shared, up to 65536
 * pages); it is compiled once per process and instantiated once per memory.
 */
import type { AmoOp } from '../hart-api.js';

const OPS: readonly AmoOp[] = ['add', 'and', 'or', 'xor', 'swap', 'min', 'max', 'minu', 'maxu'];
/** Threads-proposal sub-opcodes (after the 0xfe prefix) of the i64 read-modify-write instructions. */
const RMW64: Partial<Record<AmoOp, number>> = { add: 0x1f, and: 0x2d, or: 0x34, xor: 0x3b, swap: 0x42 };
/** i64 comparison opcode choosing the old value in a min/max loop. */
const CMP64: Partial<Record<AmoOp, number>> = { min: 0x53, minu: 0x54, max: 0x55, maxu: 0x56 };

const I64_LOAD = [0x29, 0x03, 0x00];
const I64_STORE = [0x37, 0x03, 0x00];
const ATOMIC_LOAD64 = [0xfe, 0x11, 0x03, 0x00];
const CMPXCHG64 = [0xfe, 0x49, 0x03, 0x00];
const get = (index: number) => [0x20, index];
const set = (index: number) => [0x21, index];

function uleb(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

function section(id: number, payload: number[]): number[] {
  return [id, ...uleb(payload.length), ...payload];
}

function vector(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function name(text: string): number[] {
  return [...uleb(text.length), ...Buffer.from(text, 'latin1')];
}

/** Body of op(addr, slot): the old value at addr goes to slot, the new one is op(old, slot's value). */
function amoBody(op: AmoOp): number[] {
  const rmw = RMW64[op];
  if (rmw !== undefined) {
    return [0, ...get(1), ...get(0), ...get(1), ...I64_LOAD, 0xfe, rmw, 0x03, 0x00, ...I64_STORE, 0x0b];
  }
  // locals 2 (old) and 3 (new): loop until the compare-and-swap sees the value we read
  return [
    1, 2, 0x7e,
    0x03, 0x40,
    ...get(0), ...ATOMIC_LOAD64, ...set(2),
    ...get(2), ...get(1), ...I64_LOAD, ...get(2), ...get(1), ...I64_LOAD, CMP64[op] as number, 0x1b, ...set(3),
    ...get(0), ...get(2), ...get(3), ...CMPXCHG64, ...get(2), 0x52, 0x0d, 0x00,
    0x0b,
    ...get(1), ...get(2), ...I64_STORE, 0x0b,
  ];
}

function assemble(): Uint8Array {
  const binaryOp = [0x60, 2, 0x7f, 0x7f, 0];
  const casType = [0x60, 3, 0x7f, 0x7f, 0x7f, 1, 0x7f];
  const bodies = [
    ...OPS.map(amoBody),
    [0, ...get(1), ...get(0), ...ATOMIC_LOAD64, ...I64_STORE, 0x0b],
    [0, ...get(0), ...get(1), ...I64_LOAD, ...get(2), ...I64_LOAD, ...CMPXCHG64, ...get(1), ...I64_LOAD, 0x51, 0x0b],
  ];
  const names = [...OPS, 'load', 'cas'];
  const memoryImport = [...name('e'), ...name('m'), 0x02, 0x03, ...uleb(1), ...uleb(65536)];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vector([binaryOp, casType])),
    ...section(2, vector([memoryImport])),
    ...section(3, vector(names.map((n) => [n === 'cas' ? 1 : 0]))),
    ...section(7, vector(names.map((n, i) => [...name(n), 0x00, ...uleb(i)]))),
    ...section(10, vector(bodies.map((body) => [...uleb(body.length), ...body]))),
  ]);
}

let compiled: WebAssembly.Module | undefined;

type SlotOp = (addr: number, slot: number) => void;

export class AtomicMemory {
  private readonly i32: Int32Array;
  private readonly ops64: Record<AmoOp | 'load', SlotOp>;
  private readonly cas64: (addr: number, expectedSlot: number, newSlot: number) => number;

  constructor(memory: WebAssembly.Memory) {
    this.i32 = new Int32Array(memory.buffer);
    compiled ??= new WebAssembly.Module(assemble());
    const exports = new WebAssembly.Instance(compiled, { e: { m: memory } }).exports;
    this.ops64 = exports as unknown as Record<AmoOp | 'load', SlotOp>;
    this.cas64 = exports.cas as (addr: number, expectedSlot: number, newSlot: number) => number;
  }

  /** Atomically applies `op` with the operand in `slot`; the old value (sign-extended for size 4) replaces it. */
  amo(op: AmoOp, addr: number, size: 4 | 8, slot: number): void {
    if (size === 8) return this.ops64[op](addr, slot);
    const i32 = this.i32;
    const index = addr >>> 2;
    const operand = i32[slot >>> 2];
    let old: number;
    switch (op) {
      case 'swap':
        old = Atomics.exchange(i32, index, operand);
        break;
      case 'add':
        old = Atomics.add(i32, index, operand);
        break;
      case 'and':
        old = Atomics.and(i32, index, operand);
        break;
      case 'or':
        old = Atomics.or(i32, index, operand);
        break;
      case 'xor':
        old = Atomics.xor(i32, index, operand);
        break;
      default:
        old = this.minMax32(op, index, operand);
    }
    this.setSigned(slot, old);
  }

  /** Atomic load of `size` bytes into `slot` (sign-extended for size 4). */
  load(addr: number, size: 4 | 8, slot: number): void {
    if (size === 8) this.ops64.load(addr, slot);
    else this.setSigned(slot, Atomics.load(this.i32, addr >>> 2));
  }

  /** Stores `newSlot`'s value at addr if memory still holds `expectedSlot`'s value; true when it did. */
  compareExchange(addr: number, size: 4 | 8, expectedSlot: number, newSlot: number): boolean {
    if (size === 8) return this.cas64(addr, expectedSlot, newSlot) === 1;
    const expected = this.i32[expectedSlot >>> 2];
    return Atomics.compareExchange(this.i32, addr >>> 2, expected, this.i32[newSlot >>> 2]) === expected;
  }

  private minMax32(op: AmoOp, index: number, operand: number): number {
    const unsigned = op === 'minu' || op === 'maxu';
    const wantMin = op === 'min' || op === 'minu';
    for (;;) {
      const old = Atomics.load(this.i32, index);
      const a = unsigned ? old >>> 0 : old;
      const b = unsigned ? operand >>> 0 : operand;
      const value = (a < b) === wantMin ? old : operand;
      if (Atomics.compareExchange(this.i32, index, old, value) === old) return old;
    }
  }

  private setSigned(slot: number, value: number): void {
    this.i32[slot >>> 2] = value;
    this.i32[(slot >>> 2) + 1] = value >> 31;
  }
}
