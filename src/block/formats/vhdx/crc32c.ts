/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of VHDX
 * headers, region tables and log entries. crc32c() computes it over a buffer
 * with an optional 4-byte field taken as zero (VHDX checksums cover their own
 * structure with the checksum field zeroed). Table driven, one byte at a time:
 * the structures it covers are at most a log entry long.
 */
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32C of `buf`, with the 4 bytes at `zeroAt` (if given) read as zeroes. */
export function crc32c(buf: Uint8Array, zeroAt = -1): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) {
    const b = i >= zeroAt && i < zeroAt + 4 ? 0 : buf[i]!;
    c = TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0;
}
