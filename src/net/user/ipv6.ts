/**
 * IPv6 input (RFC 8200): checks a frame's IPv6 header and walks its extension
 * headers to the upper-layer payload, without copying the payload.
 *
 * Checked: version 6, a payload length that fits the frame (Ethernet padding after
 * it is ignored; a zero length, a jumbogram, is refused), a source that is not
 * multicast. Hop-by-hop options (only first, as RFC 8200 wants), destination options
 * and routing headers with no segments left are skipped; their options are walked,
 * and one whose type asks for the packet to be discarded when not understood (the
 * two high bits not 00) drops the packet, as does an option running past its
 * header. A fragment header ends the walk: the packet comes back with it as its
 * upper layer, for reassembly (fragments.ts). Routing headers with segments left,
 * a chain of more than 8 extension headers, or one running past the payload drop
 * the packet; ESP, AH and "no next header" come back as upper layers nobody takes.
 * Nothing here throws on any input: every read is bounds-checked first.
 */
import type { Ipv6Address } from './ip-address.js';
import { ETH_HEADER, IPV6_HEADER, type InPacket } from './packet.js';

const HOP_BY_HOP = 0;
const ROUTING = 43;
const DESTINATION_OPTIONS = 60;
const MAX_EXTENSION_HEADERS = 8;

/** A received IPv6 packet: its upper-layer protocol and hop limit beside the usual fields. */
export interface Ipv6Packet extends InPacket {
  src: Ipv6Address;
  dst: Ipv6Address;
  protocol: number;
  hopLimit: number;
  /** Where the byte naming `protocol` sits (the IPv6 header's next header, or the last extension header's). */
  nextHeaderAt: number;
}

/** Whether the TLV options from `at` to `end` may be skipped (Pad1, PadN, or any type whose action is "skip"). */
function optionsSkippable(frame: Uint8Array, at: number, end: number): boolean {
  for (let i = at; i < end; ) {
    const type = frame[i]!;
    if (type === 0) { i++; continue; }
    if (i + 2 > end) return false;
    const next = i + 2 + frame[i + 1]!;
    if (next > end || type >> 6 !== 0) return false;
    i = next;
  }
  return true;
}

/** Reads the IPv6 packet in an Ethernet frame (ethertype already checked); null when it is to be dropped. */
export function readIpv6(frame: Uint8Array, view: DataView): Ipv6Packet | null {
  if (frame.length < ETH_HEADER + IPV6_HEADER || frame[ETH_HEADER]! >> 4 !== 6) return null;
  const payloadLength = view.getUint16(ETH_HEADER + 4);
  const end = ETH_HEADER + IPV6_HEADER + payloadLength;
  if (payloadLength === 0 || end > frame.length || frame[ETH_HEADER + 8] === 0xff) return null;
  let nextHeaderAt = ETH_HEADER + 6;
  let next = frame[nextHeaderAt]!;
  let at = ETH_HEADER + IPV6_HEADER;
  for (let count = 0; next === HOP_BY_HOP || next === ROUTING || next === DESTINATION_OPTIONS; count++) {
    if (count === MAX_EXTENSION_HEADERS || at + 8 > end || (next === HOP_BY_HOP && count > 0)) return null;
    const length = (frame[at + 1]! + 1) * 8;
    if (at + length > end) return null;
    if (next === ROUTING ? frame[at + 3] !== 0 : !optionsSkippable(frame, at + 2, at + length)) return null;
    nextHeaderAt = at;
    next = frame[at]!;
    at += length;
  }
  return {
    frame, view,
    src: frame.slice(ETH_HEADER + 8, ETH_HEADER + 24),
    dst: frame.slice(ETH_HEADER + 24, ETH_HEADER + 40),
    l4: at,
    l4Length: end - at,
    protocol: next,
    hopLimit: frame[ETH_HEADER + 7]!,
    nextHeaderAt,
  };
}
