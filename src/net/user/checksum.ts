/**
 * The Internet checksum (RFC 1071): the ones' complement of the ones' complement
 * sum of 16-bit big-endian words, an odd last byte padded with zero. sum() adds a
 * byte range to a running 32-bit sum (carries folded at the end), so a pseudo
 * header and a segment can be summed in pieces without copying; finish() folds
 * and complements. A received header or segment whose checksum field is included
 * verifies when finish() gives 0.
 */
import type { IpAddress } from './ip-address.js';

export function sum(bytes: Uint8Array, offset: number, length: number, initial = 0): number {
  let acc = initial;
  const end = offset + length;
  let i = offset;
  for (; i + 1 < end; i += 2) acc += (bytes[i]! << 8) | bytes[i + 1]!;
  if (i < end) acc += bytes[i]! << 8;
  // Fold early enough that the running sum stays far below 2^53.
  return acc > 0x7fffffff ? (acc & 0xffff) + Math.floor(acc / 0x10000) : acc;
}

export function finish(acc: number): number {
  let s = acc;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

/**
 * The pseudo header's sum: source, destination, protocol (next header) and L4 length,
 * for IPv4 (RFC 793) and IPv6 (RFC 8200 8.1) alike; the two differ only in the
 * addresses' size and in where the fields sit, which a sum does not see.
 */
export function pseudoHeader(src: IpAddress, dst: IpAddress, protocol: number, length: number): number {
  return addressSum(src) + addressSum(dst) + protocol + length;
}

function addressSum(addr: IpAddress): number {
  return typeof addr === 'number' ? (addr >>> 16) + (addr & 0xffff) : sum(addr, 0, 16);
}
