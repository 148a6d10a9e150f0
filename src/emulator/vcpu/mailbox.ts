/**
 * The MMIO mailbox: how a vCPU thread asks the main thread (where device
 * models and host I/O live) to do something and waits for the answer.
 *
 * Theory of operation. Each hart owns one slot of MAILBOX_SLOT_SIZE bytes in
 * the machine-shared area (after the hart control blocks). A slot holds a
 * STATE word, the request (OP, a 64-bit address or argument as two words,
 * SIZE, a 64-bit value as two words) and the reply (STATUS, a 64-bit value).
 *
 *   worker:  fills the request, STATE := REQUEST, notify, Atomics.wait while
 *            STATE is REQUEST, reads the reply (STATE stays REPLY)
 *   main:    per slot, Atomics.waitAsync while STATE is not REQUEST; runs the
 *            handler synchronously, writes the reply, STATE := REPLY, notify
 *
 * Posted stores: a store the machine knows always succeeds (the UART's byte
 * registers: a console line is one such store per character; a virtio queue
 * notification) need not wait. post() puts it in the hart's ring
 * (POST_RING_ENTRIES entries of address, size and a value of up to 4 bytes)
 * and advances POST_TAIL; the main thread drains the ring in order
 * whenever POST_TAIL moves, and before it serves any request of that hart, so
 * the device sees the hart's accesses in program order. A full ring makes
 * post() a plain call (which drains it first). post() wakes the main thread
 * only when its store is the only one in the ring (POST_HEAD was the old
 * tail after the new one was published): otherwise the main thread has been
 * woken for an earlier store and has not finished draining, and it reads
 * POST_TAIL again after each drain before it waits.
 *
 * One request per hart is in flight at a time (the hart is blocked on it), so
 * the slot needs no lock. The worker waits without a time limit while the
 * machine runs. stop() sets the STOPPED word (after the slots) and then
 * answers every waiting slot with STATUS_STOPPED; a worker checks STOPPED
 * after posting its request, so no vCPU thread stays blocked on a main thread
 * that is shutting down (one of the two always sees the other).
 *
 * Ops (the handler decides what they mean; OP numbers are in MailboxOp):
 * MMIO loads and stores, console I/O for the SBI, and system reset.
 */
import { MAX_HARTS } from '../riscv/layout.js';
import { HART_CONTROL_END } from './hart-control.js';

export const MAILBOX_BASE = HART_CONTROL_END;
export const MAILBOX_SLOT_SIZE = 64;
/** The STOPPED word: non-zero once the main thread stopped serving. */
const MAILBOX_STOPPED = MAILBOX_BASE + MAX_HARTS * MAILBOX_SLOT_SIZE;
const POST_RING_BASE = MAILBOX_STOPPED + 64;
const POST_RING_ENTRIES = 256;
/** Words per ring entry: the address, the size, the value. */
const POST_ENTRY_WORDS = 3;
export const MAILBOX_END = POST_RING_BASE + MAX_HARTS * POST_RING_ENTRIES * POST_ENTRY_WORDS * 4;

export const MailboxOp = {
  MMIO_LOAD: 1,
  MMIO_STORE: 2,
  CONSOLE_WRITE: 3,
  CONSOLE_READ: 4,
  CONSOLE_PUTCHAR: 5,
  CONSOLE_GETCHAR: 6,
  SYSTEM_RESET: 7,
} as const;

/** Reply status: OK, the request failed (e.g. no device at the address), or the machine is stopping. */
export const STATUS_OK = 0;
export const STATUS_FAILED = 1;
export const STATUS_STOPPED = 2;

const IDLE = 0;
const REQUEST = 1;
const REPLY = 2;

const W_STATE = 0;
const W_OP = 1;
const W_ARG_LO = 2;
const W_ARG_HI = 3;
const W_SIZE = 4;
const W_VALUE_LO = 5;
const W_VALUE_HI = 6;
const W_STATUS = 7;
const W_RESULT_LO = 8;
const W_RESULT_HI = 9;
/** Posted stores written into the ring by the worker, and drained by the main thread (counts). */
const W_POST_TAIL = 10;
const W_POST_HEAD = 11;

function slotWord(hart: number): number {
  if (hart < 0 || hart >= MAX_HARTS) throw new RangeError(`hart ${hart} does not exist`);
  return (MAILBOX_BASE + hart * MAILBOX_SLOT_SIZE) >> 2;
}

/** Word index of entry `n` (mod the ring size) of hart's posted-store ring: the address, the size, then the value. */
function ringWord(hart: number, n: number): number {
  return (POST_RING_BASE >> 2) + (hart * POST_RING_ENTRIES + (n & (POST_RING_ENTRIES - 1))) * POST_ENTRY_WORDS;
}

/** A request as the main thread's handler sees it; the handler fills in the result fields. */
export interface MailboxRequest {
  hart: number;
  op: number;
  /** 64-bit argument (an address), exact below 2^53. */
  arg: number;
  size: number;
  valueLo: number;
  valueHi: number;
  resultLo: number;
  resultHi: number;
}

/** The vCPU thread's side of its hart's slot. */
export class MailboxClient {
  private readonly i32: Int32Array;
  private readonly w: number;
  /** The reply of the last call. */
  resultLo = 0;
  resultHi = 0;

  constructor(memory: WebAssembly.Memory, private readonly hart: number) {
    this.i32 = new Int32Array(memory.buffer);
    this.w = slotWord(hart);
  }

  /** An MMIO store of `size` (1, 2 or 4) bytes at gpa (below 4 GiB) that must succeed, without waiting (see the header); returns the status. */
  post(gpa: number, size: number, value: number): number {
    const m = this.i32;
    const tail = m[this.w + W_POST_TAIL]!;
    if (tail - Atomics.load(m, this.w + W_POST_HEAD) >= POST_RING_ENTRIES) return this.call(MailboxOp.MMIO_STORE, gpa, size, value, 0);
    const e = ringWord(this.hart, tail);
    m[e] = gpa | 0;
    m[e + 1] = size;
    m[e + 2] = value;
    Atomics.store(m, this.w + W_POST_TAIL, tail + 1);
    if (Atomics.load(m, this.w + W_POST_HEAD) === tail) Atomics.notify(m, this.w + W_POST_TAIL);
    return STATUS_OK;
  }

  /** Sends a request and blocks until the main thread answers; returns the status. */
  call(op: number, arg: number, size: number, valueLo: number, valueHi: number): number {
    const m = this.i32;
    const w = this.w;
    m[w + W_OP] = op;
    m[w + W_ARG_LO] = arg | 0;
    m[w + W_ARG_HI] = Math.floor(arg / 0x1_0000_0000);
    m[w + W_SIZE] = size;
    m[w + W_VALUE_LO] = valueLo;
    m[w + W_VALUE_HI] = valueHi;
    Atomics.store(m, w + W_STATE, REQUEST);
    Atomics.notify(m, w + W_STATE);
    if (Atomics.load(m, MAILBOX_STOPPED >> 2) !== 0) {
      Atomics.store(m, w + W_STATE, IDLE);
      return STATUS_STOPPED;
    }
    while (Atomics.load(m, w + W_STATE) === REQUEST) Atomics.wait(m, w + W_STATE, REQUEST);
    this.resultLo = m[w + W_RESULT_LO]!;
    this.resultHi = m[w + W_RESULT_HI]!;
    return m[w + W_STATUS]!;
  }
}

/** Atomics.waitAsync, which Node 20 has but TypeScript's ES2023 library does not declare. */
type WaitAsync = (
  array: Int32Array,
  index: number,
  value: number,
) => { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/** The main thread's side: serves every hart's slot with one handler. */
export class MailboxServer {
  private readonly i32: Int32Array;
  private running = false;
  private readonly request: MailboxRequest = { hart: 0, op: 0, arg: 0, size: 0, valueLo: 0, valueHi: 0, resultLo: 0, resultHi: 0 };

  /** `handler` returns a status (STATUS_OK or STATUS_FAILED) and leaves results in the request. */
  constructor(
    memory: WebAssembly.Memory,
    private readonly harts: number,
    private readonly handler: (request: MailboxRequest) => number,
  ) {
    this.i32 = new Int32Array(memory.buffer);
  }

  /** Marks every slot idle and the server not stopped (before the vCPU threads start). */
  reset(): void {
    Atomics.store(this.i32, MAILBOX_STOPPED >> 2, 0);
    for (let hart = 0; hart < this.harts; hart++) {
      const w = slotWord(hart);
      Atomics.store(this.i32, w + W_STATE, IDLE);
      Atomics.store(this.i32, w + W_POST_TAIL, 0);
      Atomics.store(this.i32, w + W_POST_HEAD, 0);
    }
  }

  start(): void {
    this.running = true;
    for (let hart = 0; hart < this.harts; hart++) {
      void this.serve(hart);
      void this.servePosted(hart);
    }
  }

  /** Stops serving; harts blocked on a request (or sending one later) get STATUS_STOPPED. */
  stop(): void {
    this.running = false;
    Atomics.store(this.i32, MAILBOX_STOPPED >> 2, 1);
    for (let hart = 0; hart < this.harts; hart++) {
      this.answerStopped(hart);
      Atomics.notify(this.i32, slotWord(hart) + W_STATE);
      Atomics.notify(this.i32, slotWord(hart) + W_POST_TAIL);
    }
  }

  private answerStopped(hart: number): void {
    const w = slotWord(hart);
    if (Atomics.load(this.i32, w + W_STATE) === REQUEST) this.reply(w, STATUS_STOPPED, 0, 0);
  }

  private reply(w: number, status: number, lo: number, hi: number): void {
    const m = this.i32;
    m[w + W_STATUS] = status;
    m[w + W_RESULT_LO] = lo;
    m[w + W_RESULT_HI] = hi;
    Atomics.store(m, w + W_STATE, REPLY);
    Atomics.notify(m, w + W_STATE);
  }

  private async serve(hart: number): Promise<void> {
    const m = this.i32;
    const w = slotWord(hart);
    while (this.running) {
      const state = Atomics.load(m, w + W_STATE);
      if (state !== REQUEST) {
        const waited = waitAsync(m, w + W_STATE, state);
        if (waited.async) await waited.value;
        continue;
      }
      this.drain(hart);
      const r = this.request;
      r.hart = hart;
      r.op = m[w + W_OP]!;
      r.arg = (m[w + W_ARG_HI]! >>> 0) * 0x1_0000_0000 + (m[w + W_ARG_LO]! >>> 0);
      r.size = m[w + W_SIZE]!;
      r.valueLo = m[w + W_VALUE_LO]!;
      r.valueHi = m[w + W_VALUE_HI]!;
      r.resultLo = 0;
      r.resultHi = 0;
      this.reply(w, this.handle(r), r.resultLo, r.resultHi);
    }
    this.answerStopped(hart);
  }

  private handle(r: MailboxRequest): number {
    try {
      return this.handler(r);
    } catch {
      return STATUS_FAILED;
    }
  }

  /** Drains hart's posted stores whenever its POST_TAIL moves. */
  private async servePosted(hart: number): Promise<void> {
    const tailAt = slotWord(hart) + W_POST_TAIL;
    while (this.running) {
      const tail = Atomics.load(this.i32, tailAt);
      if (tail !== this.i32[slotWord(hart) + W_POST_HEAD]) {
        this.drain(hart);
        continue;
      }
      const waited = waitAsync(this.i32, tailAt, tail);
      if (waited.async) await waited.value;
    }
  }

  /** Performs hart's posted stores, oldest first (their status is known to be OK). */
  private drain(hart: number): void {
    const m = this.i32;
    const w = slotWord(hart);
    const tail = Atomics.load(m, w + W_POST_TAIL);
    const r = this.request;
    for (let head = m[w + W_POST_HEAD]!; head !== tail; head++) {
      const e = ringWord(hart, head);
      r.hart = hart;
      r.op = MailboxOp.MMIO_STORE;
      r.arg = m[e]! >>> 0;
      r.size = m[e + 1]!;
      r.valueLo = m[e + 2]!;
      r.valueHi = 0;
      this.handle(r);
      Atomics.store(m, w + W_POST_HEAD, head + 1);
    }
  }
}
