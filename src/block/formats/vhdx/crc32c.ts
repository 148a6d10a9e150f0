/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of VHDX
 * headers, region tables and log entries. crc32c() computes it over a buffer
 * with an optional 4-byte field taken as zero (VHDX checksums cover their own
 * structure with the checksum field zeroed). Four table lookups per four bytes
 * ("slicing by 4"), one per byte for the ragged ends.
 *
 * The structures are mostly zeroes (a 64 KiB region table holds a few dozen
 * bytes), so whole 512-byte pieces of zeroes, found by a native compare, are not
 * run through the tables: over zero bytes the CRC register changes linearly, and
 * a run of n zeroes is applied at once as the product of the operators for 2^k
 * zero bytes (32×32 bit matrices over GF(2), squared from the one-byte operator
 * as far as needed), one per bit of n.
 *
 * The tables are made on the first checksum, not when the module loads (about
 * 0.3 ms): the format table loads this module with the vhdx probe, and most
 * commands never checksum a VHDX structure.
 */
import { Buffer } from 'node:buffer';

type Tables = readonly [Uint32Array, Uint32Array, Uint32Array, Uint32Array];

function makeTables(): Tables {
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
}

let tables: Tables | undefined;

function updateBytes(crc: number, buf: Uint8Array, from: number, to: number): number {
  const [T0, T1, T2, T3] = (tables ??= makeTables());
  let c = crc;
  let i = from;
  for (; i + 4 <= to; i += 4) {
    c ^= buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24);
    c = T3[c & 0xff]! ^ T2[(c >>> 8) & 0xff]! ^ T1[(c >>> 16) & 0xff]! ^ T0[c >>> 24]!;
  }
  for (; i < to; i++) c = T0[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return c;
}

/** A linear map of the 32-bit register: column j is the image of bit j. */
type Operator = Uint32Array;

function apply(op: Operator, v: number): number {
  let r = 0;
  for (let j = 0; v !== 0; j++, v >>>= 1) if (v & 1) r ^= op[j]!;
  return r >>> 0;
}

/** zeroOps[k] advances the register over 2^k zero bytes; made as far as needed. */
const zeroOps: Operator[] = [];

function zeroOperator(k: number): Operator {
  if (zeroOps.length === 0) {
    const oneByte = new Uint32Array(32);
    const T0 = (tables ??= makeTables())[0];
    for (let j = 0; j < 32; j++) oneByte[j] = (T0[(1 << j) & 0xff]! ^ ((1 << j) >>> 8)) >>> 0;
    zeroOps.push(oneByte);
  }
  while (zeroOps.length <= k) {
    const half = zeroOps[zeroOps.length - 1]!;
    zeroOps.push(half.map((col) => apply(half, col)));
  }
  return zeroOps[k]!;
}

/** The register after `n` zero bytes. */
function skipZeroes(crc: number, n: number): number {
  let c = crc >>> 0;
  for (let k = 0; n > 0; k++, n = Math.floor(n / 2)) if (n % 2 === 1) c = apply(zeroOperator(k), c);
  return c;
}

const PIECE = 512;
const ZERO_PIECE = Buffer.alloc(PIECE);

function isZeroPiece(buf: Uint8Array, at: number): boolean {
  if (buf[at] !== 0 || buf[at + PIECE - 1] !== 0) return false;
  return Buffer.from(buf.buffer, buf.byteOffset + at, PIECE).equals(ZERO_PIECE);
}

function update(crc: number, buf: Uint8Array, from: number, to: number): number {
  let c = crc;
  let zeroes = 0;
  let i = from;
  for (; i + PIECE <= to; i += PIECE) {
    if (isZeroPiece(buf, i)) {
      zeroes += PIECE;
      continue;
    }
    if (zeroes > 0) c = skipZeroes(c, zeroes);
    zeroes = 0;
    c = updateBytes(c, buf, i, i + PIECE);
  }
  if (zeroes > 0) c = skipZeroes(c, zeroes);
  return updateBytes(c, buf, i, to);
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
