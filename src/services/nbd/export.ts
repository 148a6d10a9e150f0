/**
 * What the NBD server exports: a named image (any format, its backing chain
 * attached), read-only or writable, and how it looks on the wire.
 *
 * Transmission flags advertise flush, FUA, trim and write-zeroes on every export
 * (a read-only export still lists them and answers the writes with EPERM), DF once
 * structured replies are on, and multi-connection consistency: every client of
 * one server process shares the same open image, so a flush on one connection
 * covers writes made on the others.
 *
 * The base:allocation status of a range comes from the image's whole chain, as a
 * guest would see it: a range no layer allocates reads as zeroes and is a hole; an
 * allocated range is a hole when the defining layer does not store it as data (a
 * zero cluster, a host-file hole), and zero when that layer knows it reads as zeroes.
 */
import type { BlockNode } from '../../block/node.js';
import { chainBlockStatus } from '../../block/ops/chain.js';
import {
  STATE_HOLE,
  STATE_ZERO,
  TF_CAN_MULTI_CONN,
  TF_HAS_FLAGS,
  TF_READ_ONLY,
  TF_SEND_DF,
  TF_SEND_FLUSH,
  TF_SEND_FUA,
  TF_SEND_TRIM,
  TF_SEND_WRITE_ZEROES,
} from '../../block/nbd/protocol.js';

export interface NbdExport {
  /** The export name clients ask for ("" is the default export). */
  name: string;
  /** Free text for NBD_OPT_LIST and NBD_INFO_DESCRIPTION ("" for none). */
  description: string;
  /** The top of the exported image's chain. */
  image: BlockNode;
  readOnly: boolean;
}

export function transmissionFlags(exp: NbdExport, structured: boolean): number {
  let flags = TF_HAS_FLAGS | TF_SEND_FLUSH | TF_SEND_FUA | TF_SEND_TRIM | TF_SEND_WRITE_ZEROES | TF_CAN_MULTI_CONN;
  if (exp.readOnly) flags |= TF_READ_ONLY;
  if (structured) flags |= TF_SEND_DF;
  return flags;
}

export interface AllocationRun {
  length: number;
  /** STATE_HOLE and STATE_ZERO bits. */
  flags: number;
}

/** base:allocation flags of the longest uniform run at `offset` (at most `length` bytes). */
export async function allocationRun(image: BlockNode, offset: number, length: number): Promise<AllocationRun> {
  const st = await chainBlockStatus(image, offset, length);
  if (!st.allocated) return { length: st.length, flags: STATE_HOLE | STATE_ZERO };
  let layer = image;
  for (let d = 0; d < st.depth; d++) layer = layer.backing!;
  const own = await layer.blockStatus(offset, st.length);
  return { length: Math.min(st.length, own.length), flags: (own.data ? 0 : STATE_HOLE) | (own.zero ? STATE_ZERO : 0) };
}

/**
 * The runs covering [offset, offset+length), adjacent runs with equal flags merged,
 * stopping after `maxRuns` runs (the rest of the range is then not described).
 */
export async function allocationRuns(
  image: BlockNode,
  offset: number,
  length: number,
  maxRuns: number,
): Promise<AllocationRun[]> {
  const runs: AllocationRun[] = [];
  let at = offset;
  const end = offset + length;
  while (at < end) {
    const run = await allocationRun(image, at, end - at);
    if (run.length <= 0) break;
    const last = runs[runs.length - 1];
    if (last && last.flags === run.flags) last.length += run.length;
    else if (runs.length === maxRuns) break;
    else runs.push({ ...run });
    at += run.length;
  }
  return runs;
}
