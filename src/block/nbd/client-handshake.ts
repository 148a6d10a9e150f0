/**
 * The client's side of NBD negotiation, for one connection to one export.
 *
 * Steps: read the greeting (NBDMAGIC then IHAVEOPT; an oldstyle server is refused),
 * answer with FIXED_NEWSTYLE (and NO_ZEROES when offered); then, with a fixed
 * newstyle server, ask for structured replies, select base:allocation for the
 * export (both optional: a server that refuses them still serves reads and writes,
 * without holes in its answers), and enter transmission with GO, asking for the
 * block size limits. A server that does not know GO is asked with EXPORT_NAME
 * instead, as is a server without fixed newstyle.
 *
 * Errors are Error messages a user can act on: an unknown export reads like
 * QEMU's ("Requested export not available" and what the server said), other
 * refusals name the option and the server's message; a reply that breaks the
 * protocol is an NbdProtocolError.
 */
import type { Socket } from 'node:net';
import type { SocketReader } from './reader.js';
import {
  BASE_ALLOCATION,
  FLAG_C_FIXED_NEWSTYLE,
  FLAG_C_NO_ZEROES,
  FLAG_FIXED_NEWSTYLE,
  FLAG_NO_ZEROES,
  IHAVEOPT,
  INFO_BLOCK_SIZE,
  INFO_EXPORT,
  MAX_PAYLOAD,
  MAX_STRING,
  NBD_MAGIC,
  NbdProtocolError,
  OLDSTYLE_MAGIC,
  OPTION_REPLY_HEADER_SIZE,
  OPTION_REPLY_MAGIC,
  OPT_EXPORT_NAME,
  OPT_GO,
  OPT_SET_META_CONTEXT,
  OPT_STRUCTURED_REPLY,
  REP_ACK,
  REP_ERR_BIT,
  REP_ERR_UNKNOWN,
  REP_ERR_UNSUP,
  REP_INFO,
  REP_META_CONTEXT,
  concatBytes,
  decodeString,
  encodeOption,
  getU64,
  lengthPrefixed,
  view,
} from './protocol.js';

export interface ExportInfo {
  size: number;
  /** Transmission flags. */
  flags: number;
  structured: boolean;
  /** The context id of base:allocation, or null when not selected. */
  baseAllocationId: number | null;
  /** Largest READ/WRITE payload the server takes. */
  maxPayload: number;
  preferredBlock: number;
}

interface OptionReply {
  type: number;
  data: Uint8Array;
}

const MAX_REPLY_DATA = 64 << 10;

export async function clientHandshake(socket: Socket, reader: SocketReader, exportName: string): Promise<ExportInfo> {
  const greeting = view(await reader.read(18));
  if (greeting.getBigUint64(0) !== NBD_MAGIC) throw new NbdProtocolError('the server did not greet with NBDMAGIC');
  const second = greeting.getBigUint64(8);
  if (second === OLDSTYLE_MAGIC) throw new Error('the server speaks oldstyle NBD negotiation, which is not supported');
  if (second !== IHAVEOPT) throw new NbdProtocolError('the server did not greet with IHAVEOPT');
  const serverFlags = greeting.getUint16(16);
  const fixed = (serverFlags & FLAG_FIXED_NEWSTYLE) !== 0;
  const noZeroes = (serverFlags & FLAG_NO_ZEROES) !== 0;
  const clientFlags = new Uint8Array(4);
  view(clientFlags).setUint32(0, (fixed ? FLAG_C_FIXED_NEWSTYLE : 0) | (noZeroes ? FLAG_C_NO_ZEROES : 0));
  socket.write(clientFlags);

  const info: ExportInfo = {
    size: 0,
    flags: 0,
    structured: false,
    baseAllocationId: null,
    maxPayload: MAX_PAYLOAD,
    preferredBlock: 512,
  };
  if (!fixed) return exportNameOption(socket, reader, exportName, noZeroes, info);

  const option = async (opt: number, data?: Uint8Array): Promise<OptionReply[]> => {
    socket.write(encodeOption(opt, data));
    const replies: OptionReply[] = [];
    for (;;) {
      const r = await readOptionReply(reader, opt);
      replies.push(r);
      if (r.type === REP_ACK || r.type & REP_ERR_BIT) return replies;
    }
  };

  info.structured = (await option(OPT_STRUCTURED_REPLY)).at(-1)!.type === REP_ACK;
  if (info.structured) {
    const query = concatBytes([lengthPrefixed(exportName), u32(1), lengthPrefixed(BASE_ALLOCATION)]);
    for (const r of await option(OPT_SET_META_CONTEXT, query)) {
      if (r.type !== REP_META_CONTEXT || r.data.length < 4) continue;
      if (decodeString(r.data.subarray(4), 'metadata context name') === BASE_ALLOCATION) {
        info.baseAllocationId = view(r.data).getUint32(0);
      }
    }
  }

  const go = concatBytes([lengthPrefixed(exportName), u16(1), u16(INFO_BLOCK_SIZE)]);
  const replies = await option(OPT_GO, go);
  const last = replies.at(-1)!;
  if (last.type === REP_ERR_UNSUP) return exportNameOption(socket, reader, exportName, noZeroes, info);
  if (last.type & REP_ERR_BIT) throw goRefusal(last, exportName);
  let sawExport = false;
  for (const r of replies) {
    if (r.type !== REP_INFO || r.data.length < 2) continue;
    const v = view(r.data);
    const type = v.getUint16(0);
    if (type === INFO_EXPORT && r.data.length >= 12) {
      info.size = getU64(v, 2);
      info.flags = v.getUint16(10);
      sawExport = true;
    } else if (type === INFO_BLOCK_SIZE && r.data.length >= 14) {
      const preferred = v.getUint32(6);
      const max = v.getUint32(10);
      if (preferred >= 512) info.preferredBlock = preferred;
      if (max > 0) info.maxPayload = Math.min(max, MAX_PAYLOAD);
    }
  }
  if (!sawExport) throw new NbdProtocolError('the server accepted NBD_OPT_GO without sending the export size');
  return info;
}

async function exportNameOption(
  socket: Socket,
  reader: SocketReader,
  exportName: string,
  noZeroes: boolean,
  info: ExportInfo,
): Promise<ExportInfo> {
  socket.write(encodeOption(OPT_EXPORT_NAME, new TextEncoder().encode(exportName)));
  let reply: DataView;
  try {
    reply = view(await reader.read(10));
  } catch (e) {
    if (e instanceof Error && e.name === 'NbdClosedError') {
      throw new Error(`Requested export not available\nserver closed the connection on export '${exportName}'`);
    }
    throw e;
  }
  if (!noZeroes) await reader.skip(124);
  return { ...info, structured: false, baseAllocationId: null, size: getU64(reply, 0), flags: reply.getUint16(8) };
}

async function readOptionReply(reader: SocketReader, option: number): Promise<OptionReply> {
  const header = view(await reader.read(OPTION_REPLY_HEADER_SIZE));
  if (header.getBigUint64(0) !== OPTION_REPLY_MAGIC) throw new NbdProtocolError('bad option reply magic');
  if (header.getUint32(8) !== option) {
    throw new NbdProtocolError(`the server answered option ${header.getUint32(8)} to option ${option}`);
  }
  const type = header.getUint32(12);
  const length = header.getUint32(16);
  if (length > MAX_REPLY_DATA) throw new NbdProtocolError(`option reply of ${length} bytes`);
  return { type, data: await reader.read(length) };
}

function goRefusal(r: OptionReply, exportName: string): Error {
  const said = new TextDecoder().decode(r.data.subarray(0, MAX_STRING));
  if (r.type === REP_ERR_UNKNOWN) {
    return new Error(`Requested export not available${said ? `\nserver reported: ${said}` : ` (export '${exportName}')`}`);
  }
  return new Error(`The server refused export '${exportName}' (reply 0x${r.type.toString(16)})${said ? `: ${said}` : ''}`);
}

function u16(n: number): Uint8Array {
  const b = new Uint8Array(2);
  view(b).setUint16(0, n);
  return b;
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  view(b).setUint32(0, n);
  return b;
}
