/**
 * The JIT's code cache for one hart: which guest blocks are hot, which are
 * translated, their chaining slots, batch compilation and invalidation.
 *
 * Theory of operation. Blocks are keyed by the host offset of their first
 * instruction (a guest-physical address moved into the shared memory). Each
 * key ever seen gets an entry with a permanent slot (from 1; slot 0 stays
 * vacant) in the hart's function table (owned by the hub, hub.ts); a slot
 * holds either the block's translated function or the hub's `vacant`, which
 * stores the pc into PC and returns to the JS dispatcher, so translated code
 * can exit to any slot without knowing whether its target is translated yet.
 * The dispatcher enters a block through the hub's `enter(slot, host)`.
 * The jump cache (layout.ts jumpCacheBase) holds the slots of the blocks
 * the dispatcher entered last, by a hash of the host offset, for exits to other pages and
 * jalr; it holds only blocks on validated pages (see below) and is emptied on
 * invalidateAll. It lives in memory rather than in a wasm table so that
 * filling it, which the dispatcher does all the time, is a plain store.
 *
 * States of an entry: cold (counted each time the dispatcher runs it on the
 * interpreter) → queued (reached the hotness threshold) → translated, or
 * interpret-only (its first instruction is one the translator leaves to the
 * interpreter). Queued entries are compiled together into one module when the
 * queue holds `batchSize` blocks or when `flushAfter` interpreted blocks have
 * run since the first one was queued, so the fixed cost of a module (~0.2 ms)
 * is shared (500 blocks, or 6000 interpreted blocks after the first was queued).
 * With `background` (tsemu run's vCPUs) a batch is built and compiled on the
 * compile worker (compiler.ts) while the hart goes on; the blocks stay queued
 * until the dispatcher's receive() installs the module. While the worker is
 * busy, a due batch waits for it (up to WAITING_BATCHES batches' worth of
 * blocks, then it is compiled on this thread): translating on this thread too
 * makes V8 optimize the translator in a second isolate, which cost more CPU
 * than the blocks' extra wait on the interpreter. Translation decodes
 * the guest code when the batch is made, marks its page in the code-page map
 * and drops this hart's store-TLB entries for that page, so later guest
 * stores to it take the slow path and invalidate (an entry reset while its
 * batch is in flight has a new generation, and the batch skips it).
 *
 * Invalidation (CodeCacheHooks): invalidatePage resets the entries on one page
 * to cold and their slots to vacant (this hart's stores to a code page land
 * here through the slow path). invalidateAll (fence.i, remote fences) cannot
 * afford to drop everything — Linux runs fence.i whenever it maps an
 * executable page — and need not: only writers this hart did not see (other
 * harts, device DMA) can have changed translated code. So it marks every
 * translated page suspect (by advancing a fence epoch: O(1)) and empties the
 * jump-cache entries in use; the dispatcher checks a suspect page before it next
 * enters it, comparing the page with the snapshot taken when it was first
 * translated, and drops the page's translations only if the bytes differ.
 * Every page is entered through the dispatcher (chaining stays inside a
 * page), so no stale translation runs after a fence.i.
 * Slots are never reused, so old modules that still tail-call a slot number
 * reach whatever the slot holds now. The code-page byte is cleared on
 * invalidation (harts do not share translations; another hart that modifies
 * this hart's code must be followed by a fence.i here, which drops everything).
 */
import { decodeBlock } from '../isa/index.js';
import {
  CODE_PAGE_MAP_BASE, JUMP_CACHE_SIZE, RAM_GPA_BASE, RAM_HOST_BASE, jumpCacheBase, jumpCacheIndex,
} from '../layout.js';
import type { CodeCacheHooks, HartServices } from '../hart-api.js';
import { makeFpHelper } from '../fpu/execute.js';
import { AMO_OPS, blockExportName } from './batch-module.js';
import { buildBatch, type BatchTarget, type BlockRequest } from './batch-build.js';
import { BackgroundCompiler } from './compiler.js';
import { createHub, type HartAreas } from './hub.js';
import { chainTargets, translatableLength } from './translate.js';

export interface JitTuning {
  /** Interpreted runs before a block is queued for translation. */
  readonly hotThreshold: number;
  /** Blocks per compiled module at most. */
  readonly batchSize: number;
  /** Interpreted blocks after the first queued one before the queue is compiled anyway. */
  readonly flushAfter: number;
  /** Tail-call directly into same-page successors (false: every block returns to the dispatcher). */
  readonly chaining: boolean;
  /** Build and compile batches on a worker thread (compiler.ts); false: at once, on this thread. */
  readonly background: boolean;
}

export const DEFAULT_TUNING: JitTuning = { hotThreshold: 8, batchSize: 500, flushAfter: 6000, chaining: true, background: false };

const RECENT_SIZE = 1 << 14;
/** Batches' worth of queued blocks that wait for a busy compile worker before this thread compiles them. */
const WAITING_BATCHES = 4;
/** Slots the table starts with: a bundled boot creates ~37 k entries (a Debian boot more: the table grows). */
const INITIAL_SLOTS = 1 << 16;

export const COLD = 0;
export const QUEUED = 1;
export const TRANSLATED = 2;
export const INTERPRET_ONLY = 3;

export interface CacheEntry {
  readonly host: number;
  readonly slot: number;
  state: number;
  count: number;
  /** Bumped whenever the entry is reset: a batch in flight installs only entries whose generation it saw. */
  generation: number;
}

/** A batch sent to the compile worker: its entries and their generations when they were decoded. */
interface InFlight {
  readonly entries: readonly CacheEntry[];
  readonly generations: readonly number[];
}

export interface CompileStats {
  modules: number;
  blocks: number;
  bytes: number;
  millis: number;
  /** Translated blocks dropped by invalidation. */
  dropped: number;
  /** Suspect pages compared with their snapshots after fence.i, and how many had changed. */
  validated: number;
  changed: number;
  /** Milliseconds the compile worker spent on batches (the vCPU thread's share is `millis`). */
  workerMillis: number;
  /** Batches the engine rejected (a translator bug; their blocks stay interpreted), and the last error. */
  failed: number;
  lastError?: string;
}

/**
 * The engine's CSR access for translated code: (csr, kind 0/1/2, writes 0/1, insn, retired) → 1 done / 0 trapped,
 * where `retired` counts the block's instructions before the CSR one (the engine brings INSTRET up to date first).
 */
export type CsrHelper = (csr: number, kind: number, writes: number, insn: number, retired: number) => number;

export class CodeCache implements CodeCacheHooks {
  readonly table: WebAssembly.Table;
  /** What an untranslated slot holds (hub.ts). */
  readonly vacant: Function;
  /** Which entry each jump-cache entry holds. */
  private readonly jumpOwners: (CacheEntry | undefined)[] = new Array(JUMP_CACHE_SIZE).fill(undefined);
  readonly stats: CompileStats = {
    modules: 0, blocks: 0, bytes: 0, millis: 0, workerMillis: 0, dropped: 0, validated: 0, changed: 0, failed: 0,
  };
  private readonly entries = new Map<number, CacheEntry>();
  /** A direct-mapped front for `entries`, by (host >>> 1) & (RECENT_SIZE - 1): the dispatcher looks up every block. */
  private readonly recent: (CacheEntry | undefined)[] = new Array(RECENT_SIZE).fill(undefined);
  private readonly byPage = new Map<number, CacheEntry[]>();
  /** Page contents when the page's first block was translated, by RAM page. */
  private readonly snapshots = new Map<number, Buffer>();
  /** Fence epoch each RAM page was last validated in; a page is suspect while it differs from `epoch`. */
  private readonly validatedIn: Uint32Array;
  private epoch = 0;
  /** Jump-cache entries filled since they were last emptied. */
  private readonly jumpsInUse: number[] = [];
  private readonly queue: CacheEntry[] = [];
  private readonly compiler: BackgroundCompiler | undefined;
  private readonly inFlight = new Map<number, InFlight>();
  private nextBatchId = 0;
  private readonly target: BatchTarget;
  private interpretedSinceQueued = 0;
  /** Runs the block in `slot` (at host offset `host`) at the current PC; returns its status (0, or 1: interpret the instruction at PC). */
  readonly enter: (slot: number, host: number) => number;
  private readonly imports: WebAssembly.Imports;
  private readonly mem8: Uint8Array;
  /** The shared memory as a Buffer (for memcmp). */
  private readonly memBytes: Buffer;
  private readonly mem32: Int32Array;
  /** Word index of the jump cache's first entry. */
  private readonly jumpWords: number;

  constructor(private readonly hart: HartServices, csr: CsrHelper, readonly tuning: JitTuning = DEFAULT_TUNING) {
    this.mem8 = new Uint8Array(hart.memory.buffer);
    this.memBytes = Buffer.from(hart.memory.buffer);
    this.mem32 = new Int32Array(hart.memory.buffer);
    this.validatedIn = new Uint32Array(Math.max(0, hart.memory.buffer.byteLength - RAM_HOST_BASE) >>> 12);
    const areas: HartAreas = { stateBase: hart.stateBase, jumpCacheBase: jumpCacheBase(hart.id) };
    const hub = createHub(hart.memory, areas, tuning.chaining, INITIAL_SLOTS);
    this.table = hub.table;
    this.vacant = hub.vacant;
    this.target = { stateBase: areas.stateBase };
    if (tuning.background) this.compiler = new BackgroundCompiler(this.target);
    this.enter = hub.enter;
    this.jumpWords = areas.jumpCacheBase >> 2;
    this.mem32.fill(0, this.jumpWords, this.jumpWords + JUMP_CACHE_SIZE);
    this.imports = {
      env: {
        memory: hart.memory,
        leave: hub.leave,
        csr,
        load: (lo: number, hi: number, size: number) => (hart.load(lo, hi, size as 1 | 2 | 4 | 8) ? 1 : 0),
        store: (lo: number, hi: number, size: number) => (hart.store(lo, hi, size as 1 | 2 | 4 | 8) ? 1 : 0),
        lr: (lo: number, hi: number, size: number) => (hart.loadReserved(lo, hi, size as 4 | 8) ? 1 : 0),
        sc: (lo: number, hi: number, size: number) => (hart.storeConditional(lo, hi, size as 4 | 8) ? 1 : 0),
        amo: (op: number, lo: number, hi: number, size: number) => (hart.amo(AMO_OPS[op]!, lo, hi, size as 4 | 8) ? 1 : 0),
        fpEnabled: () => (hart.fpEnabled() ? 1 : 0),
        fpDirty: () => hart.fpDirty(),
        fp: makeFpHelper(hart.memory, hart.stateBase),
      },
    };
  }

  /** The entry for the block at host offset `host`, created cold if new. */
  entry(host: number): CacheEntry {
    const r = (host >>> 1) & (RECENT_SIZE - 1);
    let e = this.recent[r];
    if (e !== undefined && e.host === host) return e;
    e = this.entries.get(host);
    if (e === undefined) {
      const slot = this.entries.size + 1;
      if (slot >= this.table.length) this.table.grow(this.table.length, this.vacant);
      e = { host, slot, state: COLD, count: 0, generation: 0 };
      this.entries.set(host, e);
    }
    this.recent[r] = e;
    return e;
  }

  /** Notes that the dispatcher reached untranslated `e`; queues and compiles hot blocks (possibly `e` itself). */
  noteCold(e: CacheEntry): void {
    if (e.state === COLD && ++e.count >= this.tuning.hotThreshold) {
      e.state = QUEUED;
      this.queue.push(e);
    }
    if (this.queue.length === 0) return;
    const due = this.queue.length >= this.tuning.batchSize || ++this.interpretedSinceQueued >= this.tuning.flushAfter;
    if (due && !this.waitForCompiler()) this.flush();
  }

  /** True while the compile worker is busy and not too many blocks are queued: a due batch waits for it. */
  private waitForCompiler(): boolean {
    return this.compiler !== undefined && this.inFlight.size > 0 && this.queue.length < WAITING_BATCHES * this.tuning.batchSize;
  }

  /**
   * Decodes every queued block and compiles them into one module: on the
   * compile worker when it is idle (the blocks stay queued until receive()
   * installs them), else at once on this thread (noteCold lets a due batch
   * wait for a busy worker first, see the header). Their pages become code
   * pages now, so a store to them in the meantime resets them.
   */
  flush(): void {
    const batch = this.queue.splice(0);
    this.interpretedSinceQueued = 0;
    const t0 = performance.now();
    const entries: CacheEntry[] = [];
    const blocks: BlockRequest[] = [];
    for (const e of batch) {
      if (e.state !== QUEUED) continue;
      const block = decodeBlock(e.host, 0, (off) => this.mem8[e.host + off]! | (this.mem8[e.host + off + 1]! << 8));
      const n = translatableLength(block.insns);
      if (n === 0) {
        e.state = INTERPRET_ONLY;
        continue;
      }
      const insns = block.insns.slice(0, n);
      const offsets = block.offsets.slice(0, n);
      const bytes = n === block.insns.length ? block.bytes : block.offsets[n]!;
      const slots = this.tuning.chaining ? chainTargets(e.host, insns, offsets, bytes).flatMap((t) => [t, this.entry(t).slot]) : [];
      blocks.push({ host: e.host, insns, offsets, bytes, slots });
      entries.push(e);
      this.markCodePage(e);
    }
    if (entries.length > 0) {
      const flight: InFlight = { entries, generations: entries.map((e) => e.generation) };
      if (this.compiler !== undefined && this.inFlight.size === 0) {
        const id = this.nextBatchId++;
        this.inFlight.set(id, flight);
        this.compiler.post(id, blocks);
      } else {
        this.install(flight, () => {
          const bytes = buildBatch(this.target, blocks);
          return { module: new WebAssembly.Module(bytes), size: bytes.length };
        });
      }
    }
    this.stats.millis += performance.now() - t0;
  }

  /** Installs the batches the compile worker has finished (the dispatcher calls this before each block). */
  receive(): void {
    if (this.compiler === undefined || !this.compiler.pending) return;
    for (const reply of this.compiler.receive()) {
      const flight = this.inFlight.get(reply.id)!;
      this.inFlight.delete(reply.id);
      const t0 = performance.now();
      if ('error' in reply) {
        this.install(flight, () => { throw new Error(reply.error); });
      } else {
        this.stats.workerMillis += reply.millis;
        this.install(flight, () => reply);
      }
      this.stats.millis += performance.now() - t0;
    }
  }

  /** Instantiates a batch's module and puts its blocks that are still current into their slots. */
  private install(flight: InFlight, compile: () => { module: WebAssembly.Module; size: number }): void {
    const current = (e: CacheEntry, k: number): boolean => e.state === QUEUED && e.generation === flight.generations[k];
    let exports: WebAssembly.Exports;
    try {
      const { module, size } = compile();
      exports = new WebAssembly.Instance(module, this.imports).exports;
      this.stats.bytes += size;
    } catch (err) {
      // A translator bug must not take the guest down: these blocks stay on the interpreter.
      this.stats.failed++;
      this.stats.lastError = String(err);
      flight.entries.forEach((e, k) => {
        if (current(e, k)) e.state = INTERPRET_ONLY;
      });
      return;
    }
    this.stats.modules++;
    flight.entries.forEach((e, k) => {
      if (!current(e, k)) return;
      this.table.set(e.slot, exports[blockExportName(k)] as Function);
      e.state = TRANSLATED;
      this.stats.blocks++;
    });
  }

  private markCodePage(e: CacheEntry): void {
    const page = (e.host - RAM_HOST_BASE) >>> 12;
    let list = this.byPage.get(page);
    if (list === undefined) this.byPage.set(page, (list = []));
    list.push(e);
    if (!this.snapshots.has(page)) {
      const at = RAM_HOST_BASE + page * 4096;
      this.snapshots.set(page, Buffer.from(this.memBytes.subarray(at, at + 4096)));
    }
    if (this.mem8[CODE_PAGE_MAP_BASE + page] !== 0) return;
    this.mem8[CODE_PAGE_MAP_BASE + page] = 1;
    // No store-TLB entry may point into a code page (layout.ts).
    this.hart.dropStorePage(page);
  }

  invalidatePage(gpaPage: number): void {
    this.dropPage(gpaPage - RAM_GPA_BASE / 0x1000);
  }

  invalidateAll(): void {
    this.epoch = (this.epoch + 1) >>> 0;
    for (const i of this.jumpsInUse) {
      if (this.jumpOwners[i] !== undefined) {
        this.jumpOwners[i] = undefined;
        this.mem32[this.jumpWords + i] = 0;
      }
    }
    this.jumpsInUse.length = 0;
  }

  /** Called by the dispatcher when it enters translated `e` (its page validated): makes e reachable by jumps. */
  noteEntered(e: CacheEntry): void {
    const i = jumpCacheIndex(e.host);
    if (this.jumpOwners[i] === e) return;
    if (this.jumpOwners[i] === undefined) this.jumpsInUse.push(i);
    this.jumpOwners[i] = e;
    this.mem32[this.jumpWords + i] = e.slot;
  }

  /** Called by the dispatcher before it enters code at `host`: validates the page after a fence.i. */
  checkPage(host: number): void {
    const page = (host - RAM_HOST_BASE) >>> 12;
    if (this.validatedIn[page] === this.epoch) return;
    this.validatedIn[page] = this.epoch;
    if (!this.byPage.has(page)) return;
    this.stats.validated++;
    const snapshot = this.snapshots.get(page);
    const at = RAM_HOST_BASE + page * 4096;
    // Buffer.compare is a memcmp: a Debian boot validates a few hundred thousand pages.
    if (snapshot !== undefined && Buffer.compare(snapshot, this.memBytes.subarray(at, at + 4096)) !== 0) {
      this.stats.changed++;
      this.dropPage(page);
    }
  }

  private dropPage(page: number): void {
    const list = this.byPage.get(page);
    this.snapshots.delete(page);
    if (list === undefined) return;
    this.byPage.delete(page);
    for (const e of list) this.reset(e);
    this.mem8[CODE_PAGE_MAP_BASE + page] = 0;
  }

  private reset(e: CacheEntry): void {
    e.generation++;
    if (e.state === TRANSLATED) {
      this.table.set(e.slot, this.vacant);
      this.stats.dropped++;
      const i = jumpCacheIndex(e.host);
      if (this.jumpOwners[i] === e) {
        this.jumpOwners[i] = undefined;
        this.mem32[this.jumpWords + i] = 0;
      }
    }
    e.state = COLD;
    e.count = 0;
  }
}
