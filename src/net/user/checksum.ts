/**
 * The Internet checksum (RFC 1071): the ones' complement of the ones' complement
 * sum of 16-bit big-endian words, an odd last byte padded with zero. sum() adds a
 * byte range to a running 32-bit sum (carries folded at the end), so a pseudo
 * header and a segment can be summed in pieces without copying; finish() folds
 * and complements. A received header or segment whose checksum field is included
 * verifies when finish() gives 0.
 */

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

/** The IPv4 pseudo header's sum (source, destination, protocol, L4 length). */
export function pseudoHeader(src: number, dst: number, protocol: number, length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + length;
}
