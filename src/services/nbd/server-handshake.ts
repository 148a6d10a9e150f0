/**
 * The server's side of NBD fixed newstyle negotiation, for one connection.
 *
 * States: greeting sent (NBDMAGIC, IHAVEOPT, handshake flags FIXED_NEWSTYLE and
 * NO_ZEROES) → client flags read (unknown bits end the connection) → option
 * haggling, one option at a time, until the client picks an export (EXPORT_NAME or
 * GO: the result is the negotiated session), aborts (ABORT: null), or breaks the
 * protocol (NbdProtocolError: the caller logs it and drops the client).
 *
 * Options answered: EXPORT_NAME (an unknown name ends the connection, as the
 * protocol requires: that option cannot return an error), ABORT, LIST,
 * STRUCTURED_REPLY, INFO and GO (NBD_INFO_EXPORT always; NAME, DESCRIPTION and
 * BLOCK_SIZE when asked; an unknown name is NBD_REP_ERR_UNKNOWN and haggling goes
 * on), LIST_META_CONTEXT and SET_META_CONTEXT (the one context is base:allocation;
 * they need structured replies first). Everything else is NBD_REP_ERR_UNSUP.
 * Option data longer than MAX_OPTION_DATA ends the connection (no legitimate option
 * is that long). TLS is not offered.
 */
import type { Socket } from 'node:net';
import type { SocketReader } from '../../block/nbd/reader.js';
import { type NbdExport, transmissionFlags } from './export.js';
import {
  BASE_ALLOCATION,
  FLAG_C_FIXED_NEWSTYLE,
  FLAG_C_NO_ZEROES,
  FLAG_FIXED_NEWSTYLE,
  FLAG_NO_ZEROES,
  IHAVEOPT,
  INFO_BLOCK_SIZE,
  INFO_DESCRIPTION,
  INFO_EXPORT,
  INFO_NAME,
  MAX_PAYLOAD,
  MAX_STRING,
  NBD_MAGIC,
  NbdProtocolError,
  OPTION_HEADER_SIZE,
  OPT_ABORT,
  OPT_EXPORT_NAME,
  OPT_GO,
  OPT_INFO,
  OPT_LIST,
  OPT_LIST_META_CONTEXT,
  OPT_SET_META_CONTEXT,
  OPT_STRUCTURED_REPLY,
  REP_ACK,
  REP_ERR_INVALID,
  REP_ERR_UNKNOWN,
  REP_ERR_UNSUP,
  REP_INFO,
  REP_META_CONTEXT,
  REP_SERVER,
  concatBytes,
  decodeString,
  encodeOptionReply,
  lengthPrefixed,
  setU64,
  view,
} from '../../block/nbd/protocol.js';

export interface NegotiatedSession {
  export: NbdExport;
  structured: boolean;
  /** The id the client got for base:allocation, 0 when it selected no context. */
  baseAllocationId: number;
}

const MAX_OPTION_DATA = 64 << 10;
const BASE_ALLOCATION_ID = 1;
/** What NBD_INFO_BLOCK_SIZE advertises: any alignment works, 4 KiB is preferred. */
const PREFERRED_BLOCK = 4096;

/** An option the server answers with an error reply; haggling continues. */
class OptionRefusal extends Error {
  constructor(readonly reply: number, message: string) {
    super(message);
  }
}

export async function serverHandshake(
  socket: Socket,
  reader: SocketReader,
  exports: ReadonlyMap<string, NbdExport>,
  log: (line: string) => void,
): Promise<NegotiatedSession | null> {
  const greeting = new Uint8Array(18);
  const gv = view(greeting);
  gv.setBigUint64(0, NBD_MAGIC);
  gv.setBigUint64(8, IHAVEOPT);
  gv.setUint16(16, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
  socket.write(greeting);

  const clientFlags = view(await reader.read(4)).getUint32(0);
  if (clientFlags & ~(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES)) {
    throw new NbdProtocolError(`unknown client flags 0x${clientFlags.toString(16)}`);
  }
  const noZeroes = (clientFlags & FLAG_C_NO_ZEROES) !== 0;
  const state = { structured: false, contextsFor: null as string | null };

  for (;;) {
    const header = view(await reader.read(OPTION_HEADER_SIZE));
    if (header.getBigUint64(0) !== IHAVEOPT) throw new NbdProtocolError('bad option magic');
    const option = header.getUint32(8);
    const length = header.getUint32(12);
    if (length > MAX_OPTION_DATA) throw new NbdProtocolError(`option ${option} carries ${length} bytes of data`);
    const data = await reader.read(length);
    const reply = (type: number, payload?: Uint8Array) => socket.write(encodeOptionReply(option, type, payload));

    if (option === OPT_EXPORT_NAME) {
      const name = decodeString(data, 'export name');
      const exp = exports.get(name);
      if (!exp) {
        log(`client asked for unknown export '${name}' with NBD_OPT_EXPORT_NAME; closing the connection`);
        return null;
      }
      const out = new Uint8Array(noZeroes ? 10 : 134);
      setU64(view(out), 0, exp.image.size());
      view(out).setUint16(8, transmissionFlags(exp, state.structured));
      socket.write(out);
      return session(exp, state, name);
    }
    if (option === OPT_ABORT) {
      reply(REP_ACK);
      return null;
    }
    try {
      const chosen = answerOption(option, data, exports, state, reply);
      if (chosen) return session(chosen, state, chosen.name);
    } catch (e) {
      if (!(e instanceof OptionRefusal)) throw e;
      reply(e.reply, new TextEncoder().encode(e.message));
    }
  }
}

function session(exp: NbdExport, state: { structured: boolean; contextsFor: string | null }, name: string): NegotiatedSession {
  return {
    export: exp,
    structured: state.structured,
    baseAllocationId: state.contextsFor === name ? BASE_ALLOCATION_ID : 0,
  };
}

/** Answers one option other than EXPORT_NAME and ABORT; returns the export when GO chose one. */
function answerOption(
  option: number,
  data: Uint8Array,
  exports: ReadonlyMap<string, NbdExport>,
  state: { structured: boolean; contextsFor: string | null },
  reply: (type: number, payload?: Uint8Array) => void,
): NbdExport | null {
  const findExport = (name: string): NbdExport => {
    const exp = exports.get(name);
    if (!exp) throw new OptionRefusal(REP_ERR_UNKNOWN, `export '${name}' not present`);
    return exp;
  };
  switch (option) {
    case OPT_LIST:
      if (data.length !== 0) throw new OptionRefusal(REP_ERR_INVALID, 'NBD_OPT_LIST takes no data');
      for (const exp of exports.values()) {
        reply(REP_SERVER, concatBytes([lengthPrefixed(exp.name), new TextEncoder().encode(exp.description)]));
      }
      reply(REP_ACK);
      return null;
    case OPT_STRUCTURED_REPLY:
      if (data.length !== 0) throw new OptionRefusal(REP_ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data');
      state.structured = true;
      reply(REP_ACK);
      return null;
    case OPT_INFO:
    case OPT_GO: {
      const { name, requests } = parseInfoRequest(data);
      const exp = findExport(name);
      const info = (type: number, payload: Uint8Array) => {
        const item = new Uint8Array(2 + payload.length);
        view(item).setUint16(0, type);
        item.set(payload, 2);
        reply(REP_INFO, item);
      };
      const size = new Uint8Array(10);
      setU64(view(size), 0, exp.image.size());
      view(size).setUint16(8, transmissionFlags(exp, state.structured));
      info(INFO_EXPORT, size);
      if (requests.includes(INFO_NAME)) info(INFO_NAME, new TextEncoder().encode(exp.name));
      if (requests.includes(INFO_DESCRIPTION) && exp.description) {
        info(INFO_DESCRIPTION, new TextEncoder().encode(exp.description));
      }
      if (requests.includes(INFO_BLOCK_SIZE)) {
        const sizes = new Uint8Array(12);
        view(sizes).setUint32(0, 1);
        view(sizes).setUint32(4, PREFERRED_BLOCK);
        view(sizes).setUint32(8, MAX_PAYLOAD);
        info(INFO_BLOCK_SIZE, sizes);
      }
      reply(REP_ACK);
      return option === OPT_GO ? exp : null;
    }
    case OPT_LIST_META_CONTEXT:
    case OPT_SET_META_CONTEXT: {
      const what = option === OPT_SET_META_CONTEXT ? 'NBD_OPT_SET_META_CONTEXT' : 'NBD_OPT_LIST_META_CONTEXT';
      if (!state.structured) throw new OptionRefusal(REP_ERR_INVALID, `${what} needs structured replies first`);
      const { name, queries } = parseContextRequest(data);
      findExport(name);
      const list = option === OPT_LIST_META_CONTEXT && queries.length === 0;
      const matches = list || queries.some((q) => q === BASE_ALLOCATION || q === 'base:');
      if (option === OPT_SET_META_CONTEXT) state.contextsFor = matches ? name : null;
      if (matches) {
        const id = option === OPT_SET_META_CONTEXT ? BASE_ALLOCATION_ID : 0;
        const ctx = new TextEncoder().encode(BASE_ALLOCATION);
        const payload = new Uint8Array(4 + ctx.length);
        view(payload).setUint32(0, id);
        payload.set(ctx, 4);
        reply(REP_META_CONTEXT, payload);
      }
      reply(REP_ACK);
      return null;
    }
    default:
      throw new OptionRefusal(REP_ERR_UNSUP, `option ${option} is not supported`);
  }
}

/** A reader over one option's data; running past its end is NBD_REP_ERR_INVALID. */
class OptionData {
  private at = 0;
  constructor(private readonly data: Uint8Array) {}

  private take(n: number): Uint8Array {
    if (this.at + n > this.data.length) throw new OptionRefusal(REP_ERR_INVALID, 'option data is too short');
    const out = this.data.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  u16(): number {
    return view(this.take(2)).getUint16(0);
  }

  u32(): number {
    return view(this.take(4)).getUint32(0);
  }

  string(what: string): string {
    const length = this.u32();
    if (length > MAX_STRING) throw new OptionRefusal(REP_ERR_INVALID, `${what} is longer than ${MAX_STRING} bytes`);
    try {
      return decodeString(this.take(length), what);
    } catch (e) {
      if (e instanceof NbdProtocolError) throw new OptionRefusal(REP_ERR_INVALID, e.message);
      throw e;
    }
  }

  end(): void {
    if (this.at !== this.data.length) throw new OptionRefusal(REP_ERR_INVALID, 'option data has trailing bytes');
  }
}

function parseInfoRequest(data: Uint8Array): { name: string; requests: number[] } {
  const r = new OptionData(data);
  const name = r.string('export name');
  const count = r.u16();
  const requests: number[] = [];
  for (let i = 0; i < count; i++) requests.push(r.u16());
  r.end();
  return { name, requests };
}

function parseContextRequest(data: Uint8Array): { name: string; queries: string[] } {
  const r = new OptionData(data);
  const name = r.string('export name');
  const count = r.u32();
  const queries: string[] = [];
  for (let i = 0; i < count; i++) queries.push(r.string('metadata context query'));
  r.end();
  return { name, queries };
}
