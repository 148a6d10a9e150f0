/**
 * A small WebAssembly binary encoder: enough of the MVP format (plus tail
 * calls) for the JIT to emit modules at run time without a toolchain.
 *
 * Theory of operation. A ModuleBuilder collects function types (deduplicated),
 * imports (functions, one memory, tables, globals), function bodies, exports
 * and active element segments (functions placed into table 0 at given
 * indices when the module is instantiated, without creating JS wrappers),
 * then `bytes()` lays the sections out in the order the binary format
 * requires (type, import, function, export, element, code). A Code object is one
 * function body: it appends opcodes and their immediates to a growable byte
 * buffer; the named helpers cover every instruction that takes an immediate,
 * and `op()` emits the immediate-less ones listed in `Op`. Integers are LEB128
 * encoded; 64-bit constants are given as two 32-bit halves (no BigInt), so the
 * encoder is cheap enough to run on the translation path.
 *
 * Limits: no data section, no start function, element segments only for table 0, function-body
 * locals are declared per type run; the encoder does not validate — the
 * engine's WebAssembly.Module constructor does.
 */

export const Type = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, funcref: 0x70 } as const;
export type ValType = (typeof Type)['i32' | 'i64' | 'f32' | 'f64'];

/** Block type for a block/loop/if that yields nothing. */
export const VOID = 0x40;

/** Opcodes without immediates (names follow the text format, dots as underscores). */
export const Op = {
  unreachable: 0x00, nop: 0x01, else: 0x05, end: 0x0b, return: 0x0f, drop: 0x1a, select: 0x1b,
  i32_eqz: 0x45, i32_eq: 0x46, i32_ne: 0x47, i32_lt_s: 0x48, i32_lt_u: 0x49, i32_gt_s: 0x4a, i32_gt_u: 0x4b,
  i32_le_s: 0x4c, i32_le_u: 0x4d, i32_ge_s: 0x4e, i32_ge_u: 0x4f,
  i64_eqz: 0x50, i64_eq: 0x51, i64_ne: 0x52, i64_lt_s: 0x53, i64_lt_u: 0x54, i64_gt_s: 0x55, i64_gt_u: 0x56,
  i64_le_s: 0x57, i64_le_u: 0x58, i64_ge_s: 0x59, i64_ge_u: 0x5a,
  i32_clz: 0x67, i32_ctz: 0x68, i32_popcnt: 0x69, i32_add: 0x6a, i32_sub: 0x6b, i32_mul: 0x6c,
  i32_div_s: 0x6d, i32_div_u: 0x6e, i32_rem_s: 0x6f, i32_rem_u: 0x70, i32_and: 0x71, i32_or: 0x72,
  i32_xor: 0x73, i32_shl: 0x74, i32_shr_s: 0x75, i32_shr_u: 0x76, i32_rotl: 0x77, i32_rotr: 0x78,
  i64_clz: 0x79, i64_ctz: 0x7a, i64_popcnt: 0x7b, i64_add: 0x7c, i64_sub: 0x7d, i64_mul: 0x7e,
  i64_div_s: 0x7f, i64_div_u: 0x80, i64_rem_s: 0x81, i64_rem_u: 0x82, i64_and: 0x83, i64_or: 0x84,
  i64_xor: 0x85, i64_shl: 0x86, i64_shr_s: 0x87, i64_shr_u: 0x88, i64_rotl: 0x89, i64_rotr: 0x8a,
  f64_add: 0xa0, f64_sub: 0xa1, f64_mul: 0xa2, f64_div: 0xa3,
  i32_wrap_i64: 0xa7, i64_extend_i32_s: 0xac, i64_extend_i32_u: 0xad,
  i64_reinterpret_f64: 0xbd, f64_reinterpret_i64: 0xbf, f64_convert_i32_s: 0xb7, f64_convert_i32_u: 0xb8,
  i32_extend8_s: 0xc0, i32_extend16_s: 0xc1, i64_extend8_s: 0xc2, i64_extend16_s: 0xc3, i64_extend32_s: 0xc4,
} as const;

/** Memory-access opcodes; `align` in Code.mem is log2 of the natural alignment hint. */
export const MemOp = {
  i32_load: 0x28, i64_load: 0x29, f32_load: 0x2a, f64_load: 0x2b,
  i32_load8_s: 0x2c, i32_load8_u: 0x2d, i32_load16_s: 0x2e, i32_load16_u: 0x2f,
  i64_load8_s: 0x30, i64_load8_u: 0x31, i64_load16_s: 0x32, i64_load16_u: 0x33,
  i64_load32_s: 0x34, i64_load32_u: 0x35,
  i32_store: 0x36, i64_store: 0x37, f32_store: 0x38, f64_store: 0x39,
  i32_store8: 0x3a, i32_store16: 0x3b, i64_store8: 0x3c, i64_store16: 0x3d, i64_store32: 0x3e,
} as const;

const UTF8 = new TextEncoder();

/** A growable byte buffer with the LEB128 writers both the module and its bodies use. */
export class ByteWriter {
  private buf: Uint8Array;
  length = 0;

  constructor(capacity = 64) {
    this.buf = new Uint8Array(capacity);
  }

  byte(b: number): this {
    if (this.length === this.buf.length) this.grow(1);
    this.buf[this.length++] = b;
    return this;
  }

  bytes(src: ArrayLike<number>): this {
    if (this.length + src.length > this.buf.length) this.grow(src.length);
    this.buf.set(src, this.length);
    this.length += src.length;
    return this;
  }

  /** Unsigned LEB128 of a non-negative integer below 2^32. */
  u32(v: number): this {
    v >>>= 0;
    do {
      let b = v & 0x7f;
      v >>>= 7;
      if (v !== 0) b |= 0x80;
      this.byte(b);
    } while (v !== 0);
    return this;
  }

  /** Signed LEB128 of a 32-bit integer. */
  s32(v: number): this {
    v |= 0;
    for (;;) {
      const b = v & 0x7f;
      v >>= 7;
      if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) return this.byte(b);
      this.byte(b | 0x80);
    }
  }

  /** Signed LEB128 of the 64-bit integer hi:lo (two 32-bit halves). */
  s64(lo: number, hi: number): this {
    lo >>>= 0;
    hi |= 0;
    for (;;) {
      const b = lo & 0x7f;
      // shift the 64-bit pair right arithmetically by 7
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>= 7;
      const done = (hi === 0 && lo === 0 && (b & 0x40) === 0) || (hi === -1 && lo === 0xffffffff && (b & 0x40) !== 0);
      if (done) return this.byte(b);
      this.byte(b | 0x80);
    }
  }

  name(s: string): this {
    const enc = UTF8.encode(s);
    return this.u32(enc.length).bytes(enc);
  }

  /** A length-prefixed copy of another writer's contents. */
  sized(w: ByteWriter): this {
    return this.u32(w.length).bytes(w.view());
  }

  view(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  private grow(need: number): void {
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + need));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }
}

/** One function body: locals and instructions. */
export class Code {
  readonly w = new ByteWriter(512);
  private readonly localTypes: ValType[] = [];

  /** @param paramCount the function's parameter count (locals are numbered after them) */
  constructor(private readonly paramCount: number) {}

  /** Declares a local and returns its index. */
  local(type: ValType): number {
    this.localTypes.push(type);
    return this.paramCount + this.localTypes.length - 1;
  }

  op(code: number): this { this.w.byte(code); return this; }
  get(i: number): this { this.w.byte(0x20).u32(i); return this; }
  set(i: number): this { this.w.byte(0x21).u32(i); return this; }
  tee(i: number): this { this.w.byte(0x22).u32(i); return this; }
  globalGet(i: number): this { this.w.byte(0x23).u32(i); return this; }
  globalSet(i: number): this { this.w.byte(0x24).u32(i); return this; }
  tableGet(table: number): this { this.w.byte(0x25).u32(table); return this; }
  refIsNull(): this { this.w.byte(0xd1); return this; }
  i32(v: number): this { this.w.byte(0x41).s32(v); return this; }
  i64(lo: number, hi: number = lo < 0 ? -1 : 0): this { this.w.byte(0x42).s64(lo, hi); return this; }
  f64(v: number): this {
    const b = new Uint8Array(new Float64Array([v]).buffer);
    this.w.byte(0x44).bytes(b);
    return this;
  }
  /** A load or store with offset (unsigned, < 2^32) and log2 alignment hint. */
  mem(code: number, offset = 0, align = 0): this { this.w.byte(code).u32(align).u32(offset); return this; }
  block(type: number = VOID): this { this.w.byte(0x02).byte(type); return this; }
  loop(type: number = VOID): this { this.w.byte(0x03).byte(type); return this; }
  if(type: number = VOID): this { this.w.byte(0x04).byte(type); return this; }
  else(): this { return this.op(Op.else); }
  end(): this { return this.op(Op.end); }
  br(depth: number): this { this.w.byte(0x0c).u32(depth); return this; }
  brIf(depth: number): this { this.w.byte(0x0d).u32(depth); return this; }
  brTable(depths: readonly number[], fallback: number): this {
    this.w.byte(0x0e).u32(depths.length);
    for (const d of depths) this.w.u32(d);
    this.w.u32(fallback);
    return this;
  }
  call(func: number): this { this.w.byte(0x10).u32(func); return this; }
  callIndirect(typeIdx: number, table = 0): this { this.w.byte(0x11).u32(typeIdx).u32(table); return this; }
  returnCall(func: number): this { this.w.byte(0x12).u32(func); return this; }
  returnCallIndirect(typeIdx: number, table = 0): this { this.w.byte(0x13).u32(typeIdx).u32(table); return this; }

  /** The encoded body (local declarations, instructions, final end), length-prefixed. */
  encode(out: ByteWriter): void {
    const header = new ByteWriter(16);
    let runs = 0;
    for (let i = 0; i < this.localTypes.length; i++) if (i === 0 || this.localTypes[i] !== this.localTypes[i - 1]) runs++;
    header.u32(runs);
    for (let i = 0; i < this.localTypes.length;) {
      const t = this.localTypes[i]!;
      let n = 0;
      while (i < this.localTypes.length && this.localTypes[i] === t) { n++; i++; }
      header.u32(n).byte(t);
    }
    out.u32(header.length + this.w.length + 1).bytes(header.view()).bytes(this.w.view()).byte(Op.end);
  }
}

interface FuncDef { type: number; code: Code }
type ImportDesc =
  | { kind: 0; type: number }
  | { kind: 1; min: number; max?: number }
  | { kind: 2; min: number; max?: number; shared: boolean }
  | { kind: 3; type: ValType; mutable: boolean };

export class ModuleBuilder {
  private readonly types: string[] = [];
  private readonly typeBytes: ByteWriter[] = [];
  private readonly imports: Array<{ module: string; name: string; desc: ImportDesc }> = [];
  private readonly funcs: FuncDef[] = [];
  private readonly exports: Array<{ name: string; kind: number; index: number }> = [];
  private readonly elements: Array<{ offset: number; func: number }> = [];
  private importedFuncs = 0;
  private importedGlobals = 0;

  /** Index of the function type params → results (shared by identical signatures). */
  type(params: readonly ValType[], results: readonly ValType[]): number {
    const key = `${params.join(',')}:${results.join(',')}`;
    const found = this.types.indexOf(key);
    if (found >= 0) return found;
    const w = new ByteWriter().byte(0x60).u32(params.length).bytes(params).u32(results.length).bytes(results);
    this.types.push(key);
    this.typeBytes.push(w);
    return this.types.length - 1;
  }

  importFunction(module: string, name: string, params: readonly ValType[], results: readonly ValType[]): number {
    if (this.funcs.length > 0) throw new Error('import functions before defining any');
    this.imports.push({ module, name, desc: { kind: 0, type: this.type(params, results) } });
    return this.importedFuncs++;
  }

  importMemory(module: string, name: string, min: number, max?: number, shared = false): void {
    this.imports.push({ module, name, desc: { kind: 2, min, max, shared } });
  }

  importTable(module: string, name: string, min: number, max?: number): number {
    this.imports.push({ module, name, desc: { kind: 1, min, max } });
    return this.imports.filter((i) => i.desc.kind === 1).length - 1;
  }

  importGlobal(module: string, name: string, type: ValType, mutable: boolean): number {
    this.imports.push({ module, name, desc: { kind: 3, type, mutable } });
    return this.importedGlobals++;
  }

  /** Starts a function; returns its index and its body to fill in. */
  func(params: readonly ValType[], results: readonly ValType[]): { index: number; code: Code } {
    const code = new Code(params.length);
    this.funcs.push({ type: this.type(params, results), code });
    return { index: this.importedFuncs + this.funcs.length - 1, code };
  }

  exportFunction(name: string, index: number): void {
    this.exports.push({ name, kind: 0, index });
  }

  /** Places function `func` at index `offset` of table 0 when the module is instantiated. */
  placeInTable(offset: number, func: number): void {
    this.elements.push({ offset, func });
  }

  bytes(): Uint8Array {
    const out = new ByteWriter(1 << 16).bytes([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
    this.section(out, 1, this.typeBytes.length, (w) => { for (const t of this.typeBytes) w.bytes(t.view()); });
    this.section(out, 2, this.imports.length, (w) => {
      for (const { module, name, desc } of this.imports) {
        w.name(module).name(name).byte(desc.kind);
        if (desc.kind === 0) w.u32(desc.type);
        else if (desc.kind === 3) w.byte(desc.type).byte(desc.mutable ? 1 : 0);
        else {
          if (desc.kind === 1) w.byte(Type.funcref);
          const flags = (desc.max !== undefined ? 1 : 0) | (desc.kind === 2 && desc.shared ? 2 : 0);
          w.byte(flags).u32(desc.min);
          if (desc.max !== undefined) w.u32(desc.max);
        }
      }
    });
    this.section(out, 3, this.funcs.length, (w) => { for (const f of this.funcs) w.u32(f.type); });
    this.section(out, 7, this.exports.length, (w) => {
      for (const e of this.exports) w.name(e.name).byte(e.kind).u32(e.index);
    });
    this.section(out, 9, this.elements.length, (w) => {
      for (const e of this.elements) w.byte(0).byte(0x41).s32(e.offset).byte(Op.end).u32(1).u32(e.func);
    });
    this.section(out, 10, this.funcs.length, (w) => { for (const f of this.funcs) f.code.encode(w); });
    return out.view().slice();
  }

  private section(out: ByteWriter, id: number, count: number, fill: (w: ByteWriter) => void): void {
    if (count === 0) return;
    const w = new ByteWriter().u32(count);
    fill(w);
    out.byte(id).sized(w);
  }
}
