/**
 * IPv4 fragmentation both ways (RFC 791, with RFC 815's hole-free bookkeeping made
 * simple by refusing overlaps).
 *
 * Reassembly: fragments of a datagram (same source, destination, protocol and id)
 * are kept until every byte from 0 to the last fragment's end has arrived, then the
 * whole datagram comes back as one frame (the first fragment's Ethernet and IP
 * headers, flags and offset cleared, length and checksum rewritten) for the stack
 * to handle like any other. Overlapping fragments, fragments past 65,535 bytes and
 * non-final fragments whose length is not a multiple of 8 drop the whole datagram
 * (overlaps are how fragment attacks work; real senders never overlap). At most 64
 * datagrams are in reassembly (the oldest is dropped for a new one) and each lives
 * at most 30 s, checked whenever a fragment arrives.
 *
 * Fragmentation: a finished frame larger than the MTU is cut into fragments of at
 * most the MTU (offsets in 8-byte units, MF on all but the last), for UDP and ICMP
 * datagrams larger than a frame; TCP segments are sized by the MSS instead.
 */
import { finish, sum } from './checksum.js';

const ETH = 14;
const MAX_DATAGRAMS = 64;
const LIFETIME_MS = 30_000;
const MAX_DATAGRAM = 65535;

interface Part {
  offset: number;
  data: Uint8Array;
}

interface Pending {
  /** The Ethernet and IP headers of the fragment at offset 0, once it came. */
  headers: Uint8Array | null;
  parts: Part[];
  /** Bytes in parts. */
  received: number;
  /** The datagram's payload length, once the last fragment came (-1 before). */
  length: number;
  born: number;
}

function writeHeaderChecksum(frame: Uint8Array, headerLength: number): void {
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  view.setUint16(ETH + 10, 0);
  view.setUint16(ETH + 10, finish(sum(frame, ETH, headerLength)));
}

export class Reassembler {
  private readonly pending = new Map<string, Pending>();

  /**
   * Adds one fragment (its IP header already validated); returns the whole datagram
   * as a frame when this fragment completes it, else null.
   */
  add(frame: Uint8Array, view: DataView, headerLength: number, total: number): Uint8Array | null {
    const now = Date.now();
    for (const [key, p] of this.pending) {
      if (now - p.born < LIFETIME_MS) break;
      this.pending.delete(key);
    }
    const key = `${view.getUint32(ETH + 12)}>${view.getUint32(ETH + 16)}:${view.getUint8(ETH + 9)}:${view.getUint16(ETH + 4)}`;
    const flags = view.getUint16(ETH + 6);
    const offset = (flags & 0x1fff) * 8;
    const more = (flags & 0x2000) !== 0;
    const data = frame.subarray(ETH + headerLength, ETH + total);
    const end = offset + data.length;
    let p = this.pending.get(key);
    if (!p) {
      if (this.pending.size >= MAX_DATAGRAMS) this.pending.delete(this.pending.keys().next().value!);
      p = { headers: null, parts: [], received: 0, length: -1, born: now };
      this.pending.set(key, p);
    }
    const bad = (more && data.length % 8 !== 0) || headerLength + end > MAX_DATAGRAM || (!more && p.length >= 0 && p.length !== end)
      || (p.length >= 0 && end > p.length) || (!more && p.parts.some((x) => x.offset + x.data.length > end))
      || p.parts.some((x) => offset < x.offset + x.data.length && x.offset < end);
    if (bad) {
      this.pending.delete(key);
      return null;
    }
    p.parts.push({ offset, data: new Uint8Array(data) });
    p.received += data.length;
    if (!more) p.length = end;
    if (offset === 0) p.headers = frame.slice(0, ETH + headerLength);
    if (p.length < 0 || p.received !== p.length || !p.headers) return null;
    this.pending.delete(key);
    const headers = p.headers;
    const out = new Uint8Array(headers.length + p.length);
    out.set(headers, 0);
    for (const part of p.parts) out.set(part.data, headers.length + part.offset);
    const v = new DataView(out.buffer);
    v.setUint16(ETH + 2, headers.length - ETH + p.length);
    v.setUint16(ETH + 6, 0);
    writeHeaderChecksum(out, headers.length - ETH);
    return out;
  }
}

/** Cuts a finished frame (20-byte IP header) into frames of at most `mtu` IP bytes; small frames come back alone. */
export function fragment(frame: Uint8Array, mtu: number): Uint8Array[] {
  if (frame.length - ETH <= mtu) return [frame];
  const headers = ETH + 20;
  const step = Math.floor((mtu - 20) / 8) * 8;
  const out: Uint8Array[] = [];
  for (let at = headers; at < frame.length; at += step) {
    const length = Math.min(step, frame.length - at);
    const piece = new Uint8Array(headers + length);
    piece.set(frame.subarray(0, headers), 0);
    piece.set(frame.subarray(at, at + length), headers);
    const v = new DataView(piece.buffer);
    v.setUint16(ETH + 2, 20 + length);
    v.setUint16(ETH + 6, (at + length < frame.length ? 0x2000 : 0) | ((at - headers) / 8));
    writeHeaderChecksum(piece, 20);
    out.push(piece);
  }
  return out;
}
