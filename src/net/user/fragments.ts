/**
 * IPv4 and IPv6 fragmentation both ways (RFC 791, RFC 8200 4.5, with RFC 815's
 * hole-free bookkeeping made simple by refusing overlaps).
 *
 * Reassembly: fragments of a datagram (IPv4: same source, destination, protocol and
 * id; IPv6: same source, destination and identification) are kept until every byte
 * from 0 to the last fragment's end has arrived, then the whole datagram comes back
 * as one frame for the stack to handle like any other: the first fragment's
 * Ethernet and IP headers (IPv4: flags and offset cleared, length and checksum
 * rewritten; IPv6: the headers before the fragment header, the fragment header's
 * next header in its place, the payload length rewritten). Overlapping fragments,
 * datagrams past 65,535 bytes and non-final fragments whose length is not a multiple
 * of 8 drop the whole datagram (overlaps are how fragment attacks work; real senders
 * never overlap). At most 64 datagrams are in reassembly (the oldest is dropped for
 * a new one) and each lives at most 30 s, checked whenever a fragment arrives.
 *
 * Fragmentation: a finished frame larger than the MTU is cut into fragments of at
 * most the MTU (offsets in 8-byte units, more-fragments on all but the last; IPv6
 * fragments carry a fragment header after the 40-byte header), for UDP and ICMP
 * datagrams larger than a frame; TCP segments are sized by the MSS instead.
 */
import { finish, sum } from './checksum.js';
import { formatIpv6 } from './ip-address.js';
import type { Ipv6Packet } from './ipv6.js';

const ETH = 14;
const MAX_DATAGRAMS = 64;
const LIFETIME_MS = 30_000;
const MAX_DATAGRAM = 65535;
const IPV6_HEADER = 40;
const FRAGMENT_HEADER = 8;
const NEXT_FRAGMENT = 44;

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
   * Adds one IPv4 fragment (its IP header already validated); returns the whole
   * datagram as a frame when this fragment completes it, else null.
   */
  add(frame: Uint8Array, view: DataView, headerLength: number, total: number): Uint8Array | null {
    const key = `${view.getUint32(ETH + 12)}>${view.getUint32(ETH + 16)}:${view.getUint8(ETH + 9)}:${view.getUint16(ETH + 4)}`;
    const flags = view.getUint16(ETH + 6);
    const offset = (flags & 0x1fff) * 8;
    const out = this.collect(key, offset, (flags & 0x2000) !== 0, frame.subarray(ETH + headerLength, ETH + total),
      offset === 0 ? frame.subarray(0, ETH + headerLength) : null, headerLength);
    if (!out) return null;
    const v = new DataView(out.buffer);
    v.setUint16(ETH + 2, out.length - ETH);
    v.setUint16(ETH + 6, 0);
    writeHeaderChecksum(out, headerLength);
    return out;
  }

  /**
   * Adds one IPv6 fragment: `p` as readIpv6 gives it, its upper layer the fragment
   * header. Returns the whole datagram as a frame when this fragment completes it.
   */
  addIpv6(p: Ipv6Packet): Uint8Array | null {
    if (p.l4Length < FRAGMENT_HEADER) return null;
    const { frame, view, l4 } = p;
    const field = view.getUint16(l4 + 2);
    const key = `${formatIpv6(p.src)}>${formatIpv6(p.dst)}:${view.getUint32(l4 + 4)}`;
    const offset = field & 0xfff8;
    const unfragmentable = l4 - ETH - IPV6_HEADER;
    let headers: Uint8Array | null = null;
    if (offset === 0) {
      headers = frame.slice(0, l4);
      headers[p.nextHeaderAt] = frame[l4]!;
    }
    const out = this.collect(key, offset, (field & 1) !== 0, frame.subarray(l4 + FRAGMENT_HEADER, l4 + p.l4Length), headers, unfragmentable);
    if (out) new DataView(out.buffer).setUint16(ETH + 4, out.length - ETH - IPV6_HEADER);
    return out;
  }

  /**
   * Keeps one fragment's data; returns the datagram (the first fragment's `headers`,
   * then every fragment's data in place) once it is whole. `headerBytes` count
   * towards the 65,535-byte limit.
   */
  private collect(key: string, offset: number, more: boolean, data: Uint8Array, headers: Uint8Array | null, headerBytes: number): Uint8Array | null {
    const now = Date.now();
    for (const [k, p] of this.pending) {
      if (now - p.born < LIFETIME_MS) break;
      this.pending.delete(k);
    }
    const end = offset + data.length;
    let p = this.pending.get(key);
    if (!p) {
      if (this.pending.size >= MAX_DATAGRAMS) this.pending.delete(this.pending.keys().next().value!);
      p = { headers: null, parts: [], received: 0, length: -1, born: now };
      this.pending.set(key, p);
    }
    const bad = (more && data.length % 8 !== 0) || headerBytes + end > MAX_DATAGRAM || (!more && p.length >= 0 && p.length !== end)
      || (p.length >= 0 && end > p.length) || (!more && p.parts.some((x) => x.offset + x.data.length > end))
      || p.parts.some((x) => offset < x.offset + x.data.length && x.offset < end);
    if (bad) {
      this.pending.delete(key);
      return null;
    }
    p.parts.push({ offset, data: new Uint8Array(data) });
    p.received += data.length;
    if (!more) p.length = end;
    if (headers) p.headers = headers.slice();
    if (p.length < 0 || p.received !== p.length || !p.headers) return null;
    this.pending.delete(key);
    const out = new Uint8Array(p.headers.length + p.length);
    out.set(p.headers, 0);
    for (const part of p.parts) out.set(part.data, p.headers.length + part.offset);
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

/**
 * Cuts a finished IPv6 frame (40-byte header, no extension headers) into frames of
 * at most `mtu` IP bytes, each with a fragment header of identification `id`;
 * small frames come back alone.
 */
export function fragmentIpv6(frame: Uint8Array, mtu: number, id: number): Uint8Array[] {
  if (frame.length - ETH <= mtu) return [frame];
  const headers = ETH + IPV6_HEADER;
  const step = Math.floor((mtu - IPV6_HEADER - FRAGMENT_HEADER) / 8) * 8;
  const out: Uint8Array[] = [];
  for (let at = headers; at < frame.length; at += step) {
    const length = Math.min(step, frame.length - at);
    const piece = new Uint8Array(headers + FRAGMENT_HEADER + length);
    piece.set(frame.subarray(0, headers), 0);
    piece.set(frame.subarray(at, at + length), headers + FRAGMENT_HEADER);
    const v = new DataView(piece.buffer);
    v.setUint16(ETH + 4, FRAGMENT_HEADER + length);
    v.setUint8(ETH + 6, NEXT_FRAGMENT);
    v.setUint8(headers, frame[ETH + 6]!);
    v.setUint16(headers + 2, (at - headers) | (at + length < frame.length ? 1 : 0));
    v.setUint32(headers + 4, id >>> 0);
    out.push(piece);
  }
  return out;
}
