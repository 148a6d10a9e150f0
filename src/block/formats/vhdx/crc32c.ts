/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of VHDX
 * headers, region tables and log entries. crc32c() computes it over a buffer
 * with an optional 4-byte field taken as zero (VHDX checksums cover their own
 * structure with the checksum field zeroed). Four table lookups per four bytes
 * ("slicing by 4"), one per byte for the ragged ends.
 */
const TABLES = (() => {
  const t = [new Uint32Array(256), new Uint32Array(256), new Uint32Array(256), new Uint32Array(256)] as const;
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[0][n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 4; k++) t[k]![n] = (t[k - 1]![n]! >>> 8) ^ t[0][t[k - 1]![n]! & 0xff]!;
  }
  return t;
})();
const [T0, T1, T2, T3] = TABLES;

function update(crc: number, buf: Uint8Array, from: number, to: number): number {
  let c = crc;
  let i = from;
  for (; i + 4 <= to; i += 4) {
    c ^= buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24);
    c = T3[c & 0xff]! ^ T2[(c >>> 8) & 0xff]! ^ T1[(c >>> 16) & 0xff]! ^ T0[c >>> 24]!;
  }
  for (; i < to; i++) c = T0[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return c;
}

/** CRC-32C of `buf`, with the 4 bytes at `zeroAt` (if given) read as zeroes. */
export function crc32c(buf: Uint8Array, zeroAt = -1): number {
  let c = 0xffffffff;
  if (zeroAt < 0) c = update(c, buf, 0, buf.length);
  else {
    c = update(c, buf, 0, zeroAt);
    c = update(c, new Uint8Array(4), 0, 4);
    c = update(c, buf, zeroAt + 4, buf.length);
  }
  return (c ^ 0xffffffff) >>> 0;
}
