/**
 * The NBD wire protocol's numbers and fixed-size headers, shared by the server and
 * the client (the protocol is NetworkBlockDevice's doc/proto.md: fixed newstyle
 * negotiation, structured replies, metadata contexts).
 *
 * Everything on the wire is big-endian. Headers are encoded into and decoded from
 * DataViews over byte arrays; 64-bit fields are read as two 32-bit halves and kept as
 * numbers (offsets and sizes stay below 2^53, handles are opaque 8 bytes that the
 * client picks: this side keeps them below 2^53 too, and the server echoes the
 * bytes it was sent). Only the header layouts live here; each side parses the
 * payloads it understands.
 */

/** "NBDMAGIC": the first 8 bytes a server sends. */
export const NBD_MAGIC = 0x4e42444d41474943n;
/** "IHAVEOPT": newstyle negotiation, and the prefix of every client option. */
export const IHAVEOPT = 0x49484156454f5054n;
/** The oldstyle negotiation's second magic (not spoken here, recognised to refuse it). */
export const OLDSTYLE_MAGIC = 0x00420281861253n;
/** Prefix of every option reply. */
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;

/** Handshake flags (server) and client flags. */
export const FLAG_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_NO_ZEROES = 1 << 1;
export const FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_C_NO_ZEROES = 1 << 1;

/** Options. */
export const OPT_EXPORT_NAME = 1;
export const OPT_ABORT = 2;
export const OPT_LIST = 3;
export const OPT_STARTTLS = 5;
export const OPT_INFO = 6;
export const OPT_GO = 7;
export const OPT_STRUCTURED_REPLY = 8;
export const OPT_LIST_META_CONTEXT = 9;
export const OPT_SET_META_CONTEXT = 10;

/** Option reply types; errors have bit 31 set. */
export const REP_ACK = 1;
export const REP_SERVER = 2;
export const REP_INFO = 3;
export const REP_META_CONTEXT = 4;
export const REP_ERR_BIT = 0x80000000;
export const REP_ERR_UNSUP = REP_ERR_BIT + 1;
export const REP_ERR_POLICY = REP_ERR_BIT + 2;
export const REP_ERR_INVALID = REP_ERR_BIT + 3;
export const REP_ERR_UNKNOWN = REP_ERR_BIT + 6;
export const REP_ERR_TOO_BIG = REP_ERR_BIT + 9;

/** NBD_REP_INFO item types. */
export const INFO_EXPORT = 0;
export const INFO_NAME = 1;
export const INFO_DESCRIPTION = 2;
export const INFO_BLOCK_SIZE = 3;

/** Transmission flags. */
export const TF_HAS_FLAGS = 1 << 0;
export const TF_READ_ONLY = 1 << 1;
export const TF_SEND_FLUSH = 1 << 2;
export const TF_SEND_FUA = 1 << 3;
export const TF_SEND_TRIM = 1 << 5;
export const TF_SEND_WRITE_ZEROES = 1 << 6;
export const TF_SEND_DF = 1 << 7;
export const TF_CAN_MULTI_CONN = 1 << 8;

/** Commands. */
export const CMD_READ = 0;
export const CMD_WRITE = 1;
export const CMD_DISC = 2;
export const CMD_FLUSH = 3;
export const CMD_TRIM = 4;
export const CMD_WRITE_ZEROES = 6;
export const CMD_BLOCK_STATUS = 7;

/** Command flags. */
export const CMD_FLAG_FUA = 1 << 0;
export const CMD_FLAG_NO_HOLE = 1 << 1;
export const CMD_FLAG_DF = 1 << 2;
export const CMD_FLAG_REQ_ONE = 1 << 3;

/** Structured reply chunks. */
export const REPLY_FLAG_DONE = 1 << 0;
export const REPLY_TYPE_NONE = 0;
export const REPLY_TYPE_OFFSET_DATA = 1;
export const REPLY_TYPE_OFFSET_HOLE = 2;
export const REPLY_TYPE_BLOCK_STATUS = 5;
export const REPLY_TYPE_ERROR_BIT = 0x8000;
export const REPLY_TYPE_ERROR = REPLY_TYPE_ERROR_BIT + 1;
export const REPLY_TYPE_ERROR_OFFSET = REPLY_TYPE_ERROR_BIT + 2;

/** base:allocation status flags. */
export const STATE_HOLE = 1 << 0;
export const STATE_ZERO = 1 << 1;
export const BASE_ALLOCATION = 'base:allocation';

/** The error values the protocol defines. */
export const NBD_EPERM = 1;
export const NBD_EIO = 5;
export const NBD_ENOMEM = 12;
export const NBD_EINVAL = 22;
export const NBD_ENOSPC = 28;
export const NBD_EOVERFLOW = 75;
export const NBD_ENOTSUP = 95;
export const NBD_ESHUTDOWN = 108;

const ERROR_TEXT: Record<number, string> = {
  [NBD_EPERM]: 'Operation not permitted',
  [NBD_EIO]: 'Input/output error',
  [NBD_ENOMEM]: 'Cannot allocate memory',
  [NBD_EINVAL]: 'Invalid argument',
  [NBD_ENOSPC]: 'No space left on device',
  [NBD_EOVERFLOW]: 'Value too large for defined data type',
  [NBD_ENOTSUP]: 'Operation not supported',
  [NBD_ESHUTDOWN]: 'Cannot send after transport endpoint shutdown',
};

/** strerror-like text for an NBD error value. */
export function nbdErrorText(code: number): string {
  return ERROR_TEXT[code] ?? `Unknown error ${code}`;
}

const SOCKET_ERROR_TEXT: Record<string, string> = {
  ECONNREFUSED: 'Connection refused',
  ECONNRESET: 'Connection reset by peer',
  EADDRINUSE: 'Address already in use',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  ETIMEDOUT: 'Connection timed out',
  EHOSTUNREACH: 'No route to host',
  ENETUNREACH: 'Network is unreachable',
  ENOTFOUND: 'Name or service not known',
  EAI_AGAIN: 'Temporary failure in name resolution',
};

/** strerror-like text for a failed connect, bind or listen. */
export function socketErrorText(e: NodeJS.ErrnoException): string {
  return (e.code && SOCKET_ERROR_TEXT[e.code]) ?? e.message;
}

/** Strings (export names, queries, messages) are at most this long. */
export const MAX_STRING = 4096;
/** The largest READ or WRITE payload either side handles (the spec's default maximum). */
export const MAX_PAYLOAD = 32 << 20;

export const REQUEST_SIZE = 28;
export const SIMPLE_REPLY_SIZE = 16;
export const CHUNK_HEADER_SIZE = 20;
export const OPTION_HEADER_SIZE = 16;
export const OPTION_REPLY_HEADER_SIZE = 20;

/** A wire-protocol violation by the peer: the connection cannot go on. */
export class NbdProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NbdProtocolError';
  }
}

export function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

export function getU64(v: DataView, at: number): number {
  const value = v.getUint32(at) * 2 ** 32 + v.getUint32(at + 4);
  if (!Number.isSafeInteger(value)) throw new NbdProtocolError(`64-bit value ${value} is too large`);
  return value;
}

export function setU64(v: DataView, at: number, value: number): void {
  v.setUint32(at, Math.floor(value / 2 ** 32));
  v.setUint32(at + 4, value >>> 0);
}

export interface Request {
  flags: number;
  type: number;
  /** The handle as sent (8 bytes, echoed back in replies). */
  handle: Uint8Array;
  offset: number;
  length: number;
}

export function encodeRequest(type: number, flags: number, handle: number, offset: number, length: number): Uint8Array {
  const buf = new Uint8Array(REQUEST_SIZE);
  const v = view(buf);
  v.setUint32(0, REQUEST_MAGIC);
  v.setUint16(4, flags);
  v.setUint16(6, type);
  setU64(v, 8, handle);
  setU64(v, 16, offset);
  v.setUint32(24, length);
  return buf;
}

/** Decodes a request header; the offset may exceed 2^53 only in a hostile request (then it is Infinity). */
export function decodeRequest(buf: Uint8Array): Request {
  const v = view(buf);
  if (v.getUint32(0) !== REQUEST_MAGIC) {
    throw new NbdProtocolError(`bad request magic 0x${v.getUint32(0).toString(16)}`);
  }
  const high = v.getUint32(16);
  const offset = high >= 2 ** 21 ? Infinity : high * 2 ** 32 + v.getUint32(20);
  return { flags: v.getUint16(4), type: v.getUint16(6), handle: buf.slice(8, 16), offset, length: v.getUint32(24) };
}

export function encodeSimpleReply(error: number, handle: Uint8Array): Uint8Array {
  const buf = new Uint8Array(SIMPLE_REPLY_SIZE);
  const v = view(buf);
  v.setUint32(0, SIMPLE_REPLY_MAGIC);
  v.setUint32(4, error);
  buf.set(handle, 8);
  return buf;
}

/** A structured reply chunk's header followed by room for `payloadLength` bytes of payload at offset 20. */
export function encodeChunk(flags: number, type: number, handle: Uint8Array, payloadLength: number, extra = 0): Uint8Array {
  const buf = new Uint8Array(CHUNK_HEADER_SIZE + extra);
  const v = view(buf);
  v.setUint32(0, STRUCTURED_REPLY_MAGIC);
  v.setUint16(4, flags);
  v.setUint16(6, type);
  buf.set(handle, 8);
  v.setUint32(16, payloadLength);
  return buf;
}

/** A structured error chunk (NBD_REPLY_TYPE_ERROR) with a message, as the final chunk. */
export function encodeErrorChunk(handle: Uint8Array, error: number, message: string): Uint8Array {
  const text = new TextEncoder().encode(message).subarray(0, MAX_STRING);
  const buf = encodeChunk(REPLY_FLAG_DONE, REPLY_TYPE_ERROR, handle, 6 + text.length, 6 + text.length);
  const v = view(buf);
  v.setUint32(CHUNK_HEADER_SIZE, error);
  v.setUint16(CHUNK_HEADER_SIZE + 4, text.length);
  buf.set(text, CHUNK_HEADER_SIZE + 6);
  return buf;
}

export function encodeOption(option: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const buf = new Uint8Array(OPTION_HEADER_SIZE + data.length);
  const v = view(buf);
  v.setBigUint64(0, IHAVEOPT);
  v.setUint32(8, option);
  v.setUint32(12, data.length);
  buf.set(data, OPTION_HEADER_SIZE);
  return buf;
}

export function encodeOptionReply(option: number, type: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const buf = new Uint8Array(OPTION_REPLY_HEADER_SIZE + data.length);
  const v = view(buf);
  v.setBigUint64(0, OPTION_REPLY_MAGIC);
  v.setUint32(8, option);
  v.setUint32(12, type);
  v.setUint32(16, data.length);
  buf.set(data, OPTION_REPLY_HEADER_SIZE);
  return buf;
}

/** A string as the protocol sends it inside a payload: 32-bit length, then UTF-8 bytes. */
export function lengthPrefixed(text: string): Uint8Array {
  const bytes = new TextEncoder().encode(text);
  const buf = new Uint8Array(4 + bytes.length);
  view(buf).setUint32(0, bytes.length);
  buf.set(bytes, 4);
  return buf;
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes a protocol string; invalid UTF-8 or a NUL is the peer's error. */
export function decodeString(bytes: Uint8Array, what: string): string {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new NbdProtocolError(`${what} is not valid UTF-8`);
  }
  if (text.includes('\0')) throw new NbdProtocolError(`${what} contains a NUL byte`);
  return text;
}
