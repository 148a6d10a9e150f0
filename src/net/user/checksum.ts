/**
 * The Internet checksum (RFC 1071): the ones' complement of the ones' complement
 * sum of 16-bit big-endian words, an odd last byte padded with zero. sum() adds a
 * byte range to a running sum (carries folded at the end), so a pseudo
 * header and a segment can be summed in pieces without copying; finish() folds
 * and complements. A received header or segment whose checksum field is included
 * verifies when finish() gives 0.
 *
 * Speed: the bulk of a range is summed as 32-bit words through a Uint32Array
 * (the host's byte order), one load and one add per 4 bytes; on a little-endian
 * host the folded result is byte-swapped once: RFC 1071's byte-order independence
 * (section 2(B)) makes that the big-endian sum. A range whose start is odd in its
 * buffer takes the byte-pair loop.
 */
import type { IpAddress } from './ip-address.js';

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function sum(bytes: Uint8Array, offset: number, length: number, initial = 0): number {
  const end = offset + length;
  let i = offset;
  let acc = 0;
  const at = bytes.byteOffset + offset;
  if ((at & 1) === 0) {
    if ((at & 2) !== 0 && i + 1 < end) {
      acc += (bytes[i]! << 8) | bytes[i + 1]!;
      i += 2;
    }
    const words = (end - i) >> 2;
    if (words > 0) {
      const native = new Uint32Array(bytes.buffer, bytes.byteOffset + i, words);
      let wide = 0;
      for (let k = 0; k < words; k++) wide += native[k]!;
      const native16 = fold(wide);
      acc += LITTLE_ENDIAN ? ((native16 & 0xff) << 8) | (native16 >>> 8) : native16;
      i += words * 4;
    }
  }
  for (; i + 1 < end; i += 2) acc += (bytes[i]! << 8) | bytes[i + 1]!;
  if (i < end) acc += bytes[i]! << 8;
  return initial + fold(acc);
}

/** Folds a sum (below 2^53) to 16 bits, ones' complement (end-around carries). */
function fold(acc: number): number {
  let s = acc;
  while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  return s;
}

export function finish(acc: number): number {
  return ~fold(acc) & 0xffff;
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
