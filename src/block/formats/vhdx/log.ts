/**
 * The VHDX metadata log: a circular region of 4 KiB sectors holding entries that
 * describe metadata writes, so that a crash between writing metadata in place and
 * finishing leaves an image whose log, replayed, completes the update.
 *
 * An entry: a 64-byte header ("loge", CRC-32C over the whole entry with the CRC
 * field zero, entry length, tail, sequence number, descriptor count, LogGuid,
 * FlushedFileOffset, LastFileOffset), then 32-byte descriptors (the header takes
 * the first two slots of the first 4 KiB sector), then one 4 KiB data sector per
 * data descriptor. A data descriptor ("desc") names a 4 KiB-aligned file offset
 * and keeps that sector's first 8 and last 4 bytes; its data sector ("data",
 * sequence high, 4084 bytes, sequence low) carries the middle. A zero descriptor
 * ("zero") zeroes a 4 KiB-multiple range. Every descriptor and data sector repeats
 * the entry's sequence number.
 *
 * Reading (findActiveSequence): an entry is valid when all of the above checks
 * out and its LogGuid is the header's. The active sequence is the one ending in
 * the valid entry with the highest sequence number whose chain, from the entry
 * its tail names through entries that follow one another with sequence numbers
 * one apart, is complete. An entry whose FlushedFileOffset is past the end of the
 * file means the file was truncated: an error, as the specification says.
 * replaySequence() grows the file to the entries' LastFileOffset, writes every
 * descriptor in order and flushes; clearing the header's LogGuid is the caller's step.
 *
 * Writing (buildLogEntry): one entry of data descriptors for whole 4 KiB sectors.
 * Limits: a log is read whole into memory, so logs over 256 MiB are refused;
 * entries that would grow the file by more than 64 GiB are refused as implausible;
 * a log whose search would checksum more than four times its size, or walk its
 * chains more than four times its entry count (only crafted logs do), is refused.
 */
import { ImageFormatError } from '../../node.js';
import type { ProtocolNode } from '../../protocols/protocol.js';
import { crc32c } from './crc32c.js';
import { guidBytes } from '../disk-uuid.js';
import { ascii, getU64, guidText, HEADER_AREA_BYTES, MiB, setU64, view } from './layout.js';

export const LOG_SECTOR = 4096;
const ENTRY_HEADER_BYTES = 64;
const DESCRIPTOR_BYTES = 32;
const MAX_LOG_BYTES = 256 * MiB;
const MAX_GROWTH = 64 * 2 ** 30;

/** 4 KiB sectors taken by the header and `count` descriptors. */
export function descriptorSectors(count: number): number {
  return Math.ceil((count + 2) / (LOG_SECTOR / DESCRIPTOR_BYTES));
}

/** Bytes of an entry carrying `sectors` data sectors. */
export function logEntryBytes(sectors: number): number {
  return (descriptorSectors(sectors) + sectors) * LOG_SECTOR;
}

export interface LogEntryFields {
  logGuid: string;
  sequence: number;
  /** Log offset of the oldest entry a replay must start from. */
  tail: number;
  flushedFileOffset: number;
  lastFileOffset: number;
  /** Whole sectors to write: 4 KiB-aligned file offset and 4096 bytes each. */
  writes: readonly { fileOffset: number; data: Uint8Array }[];
}

export function buildLogEntry(f: LogEntryFields): Uint8Array {
  const descSectors = descriptorSectors(f.writes.length);
  const entry = new Uint8Array(logEntryBytes(f.writes.length));
  const v = view(entry);
  const seqLo = f.sequence % 2 ** 32;
  const seqHi = Math.floor(f.sequence / 2 ** 32);
  entry.set(new TextEncoder().encode('loge'), 0);
  v.setUint32(8, entry.length, true);
  v.setUint32(12, f.tail, true);
  setU64(v, 16, f.sequence);
  v.setUint32(24, f.writes.length, true);
  entry.set(guidBytes(f.logGuid), 32);
  setU64(v, 48, f.flushedFileOffset);
  setU64(v, 56, f.lastFileOffset);
  f.writes.forEach((w, i) => {
    const d = ENTRY_HEADER_BYTES + i * DESCRIPTOR_BYTES;
    entry.set(new TextEncoder().encode('desc'), d);
    entry.set(w.data.subarray(LOG_SECTOR - 4), d + 4);
    entry.set(w.data.subarray(0, 8), d + 8);
    setU64(v, d + 16, w.fileOffset);
    setU64(v, d + 24, f.sequence);
    const s = (descSectors + i) * LOG_SECTOR;
    entry.set(new TextEncoder().encode('data'), s);
    v.setUint32(s + 4, seqHi, true);
    entry.set(w.data.subarray(8, LOG_SECTOR - 4), s + 8);
    v.setUint32(s + LOG_SECTOR - 4, seqLo, true);
  });
  v.setUint32(4, crc32c(entry, 4), true);
  return entry;
}

/** One descriptor of a valid entry: write `data` (4 KiB), or zero `zeroLength` bytes, at `fileOffset`. */
export type LogWrite = { fileOffset: number; data: Uint8Array } | { fileOffset: number; zeroLength: number };

export interface LogEntry {
  /** Where the entry starts in the log. */
  offset: number;
  length: number;
  /** All 64 bits: a writer may start anywhere, and chains compare neighbours exactly. */
  sequence: bigint;
  tail: number;
  flushedFileOffset: number;
  lastFileOffset: number;
  writes: LogWrite[];
}

/** `n` bytes of the log from `at`, wrapping around its end. */
function circular(log: Uint8Array, at: number, n: number): Uint8Array {
  if (at + n <= log.length) return log.subarray(at, at + n);
  const out = new Uint8Array(n);
  out.set(log.subarray(at), 0);
  out.set(log.subarray(0, n - (log.length - at)), log.length - at);
  return out;
}

function sequenceAt(v: DataView, at: number): bigint {
  return v.getBigUint64(at, true);
}

/**
 * The entry at `offset` of the log if it is valid (see the header comment), else
 * null. `spend` hears of the bytes about to be checksummed (it may throw to stop).
 */
export function parseEntryAt(log: Uint8Array, offset: number, logGuid: string, spend: (bytes: number) => void = () => {}): LogEntry | null {
  const head = circular(log, offset, ENTRY_HEADER_BYTES);
  const hv = view(head);
  if (ascii(head, 0, 4) !== 'loge') return null;
  const length = hv.getUint32(8, true);
  const tail = hv.getUint32(12, true);
  const sequence = sequenceAt(hv, 16);
  const count = hv.getUint32(24, true);
  if (length === 0 || length % LOG_SECTOR !== 0 || length > log.length) return null;
  if (tail % LOG_SECTOR !== 0 || tail >= log.length || sequence === 0n) return null;
  if (guidText(head, 32) !== logGuid) return null;
  const descSectors = descriptorSectors(count);
  if (descSectors * LOG_SECTOR > length) return null;
  spend(length);
  const entry = circular(log, offset, length);
  const v = view(entry);
  if (v.getUint32(4, true) !== crc32c(entry, 4)) return null;
  if (hv.getUint32(52, true) >= 0x200000 || hv.getUint32(60, true) >= 0x200000) return null;
  const writes: LogWrite[] = [];
  let dataSector = descSectors;
  for (let i = 0; i < count; i++) {
    const d = ENTRY_HEADER_BYTES + i * DESCRIPTOR_BYTES;
    const sig = ascii(entry, d, 4);
    if (v.getUint32(d + 28, true) >= 0x200000 || v.getUint32(d + 20, true) >= 0x200000) return null;
    const fileOffset = getU64(v, d + 16, 'log descriptor file offset');
    if (sequenceAt(v, d + 24) !== sequence || fileOffset % LOG_SECTOR !== 0) return null;
    if (sig === 'zero') {
      const zeroLength = getU64(v, d + 8, 'log zero length');
      if (zeroLength % LOG_SECTOR !== 0) return null;
      writes.push({ fileOffset, zeroLength });
    } else if (sig === 'desc') {
      const s = dataSector++ * LOG_SECTOR;
      if (s + LOG_SECTOR > length || ascii(entry, s, 4) !== 'data') return null;
      if ((BigInt(v.getUint32(s + 4, true)) << 32n) + BigInt(v.getUint32(s + LOG_SECTOR - 4, true)) !== sequence) return null;
      const data = new Uint8Array(LOG_SECTOR);
      data.set(entry.subarray(d + 8, d + 16), 0);
      data.set(entry.subarray(s + 8, s + LOG_SECTOR - 4), 8);
      data.set(entry.subarray(d + 4, d + 8), LOG_SECTOR - 4);
      writes.push({ fileOffset, data });
    } else {
      return null;
    }
  }
  return {
    offset,
    length,
    sequence,
    tail,
    flushedFileOffset: getU64(hv, 48, 'flushed file offset'),
    lastFileOffset: getU64(hv, 56, 'last file offset'),
    writes,
  };
}

/** Reads the log region of `file` (offset, length from the header), refusing absurd ones. */
export async function readLog(file: ProtocolNode, offset: number, length: number): Promise<Uint8Array> {
  if (length > MAX_LOG_BYTES) throw new ImageFormatError(`unsupported VHDX: log of ${length} bytes (at most ${MAX_LOG_BYTES} are read)`);
  const log = new Uint8Array(length);
  await file.read(offset, log);
  return log;
}

/** The active sequence of the log (oldest entry first), or [] when nothing needs replaying. */
export function findActiveSequence(log: Uint8Array, logGuid: string): LogEntry[] {
  // Work budgets: a sound log costs about one pass; a crafted one must not cost n² passes.
  const budget = 4 * log.length + 16 * MiB;
  let checked = 0;
  const valid = new Map<number, LogEntry>();
  for (let at = 0; at < log.length; at += LOG_SECTOR) {
    const e = parseEntryAt(log, at, logGuid, (bytes) => {
      checked += bytes;
      if (checked > budget) throw new ImageFormatError('invalid VHDX: the log holds too many overlapping entries to search');
    });
    if (e) valid.set(at, e);
  }
  const heads = [...valid.values()].sort((a, b) => (b.sequence > a.sequence ? 1 : b.sequence < a.sequence ? -1 : 0));
  let steps = 0;
  for (const head of heads) {
    const chain: LogEntry[] = [];
    let e = valid.get(head.tail);
    while (e) {
      if (++steps > 4 * valid.size + 1024) throw new ImageFormatError('invalid VHDX: the log entries do not form a sequence');
      const prev = chain[chain.length - 1];
      if (prev && e.sequence !== prev.sequence + 1n) break;
      chain.push(e);
      if (e === head) return chain;
      e = valid.get((e.offset + e.length) % log.length);
    }
  }
  return [];
}

/** Grows the file to the entries' LastFileOffset, applies `entries` in order and flushes. */
export async function replaySequence(file: ProtocolNode, entries: readonly LogEntry[], log: { offset: number; length: number }): Promise<void> {
  const size = file.size();
  for (const e of entries) {
    if (e.flushedFileOffset > size) {
      throw new ImageFormatError(
        `invalid VHDX: log entry ${e.sequence} expects a file of at least ${e.flushedFileOffset} bytes, the file has ${size} (truncated image?)`,
      );
    }
    if (e.lastFileOffset > size + MAX_GROWTH) throw new ImageFormatError(`invalid VHDX: log entry ${e.sequence} grows the file to ${e.lastFileOffset} bytes`);
    for (const w of e.writes) {
      const end = w.fileOffset + ('data' in w ? LOG_SECTOR : w.zeroLength);
      const inLog = w.fileOffset < log.offset + log.length && log.offset < end;
      if (w.fileOffset < HEADER_AREA_BYTES || inLog || end > Math.max(size, e.lastFileOffset)) {
        throw new ImageFormatError(`invalid VHDX: log entry ${e.sequence} writes ${end - w.fileOffset} bytes at ${w.fileOffset}, outside the image's metadata and data`);
      }
    }
  }
  const last = Math.max(...entries.map((e) => e.lastFileOffset));
  if (size < last) await file.truncate(Math.ceil(last / MiB) * MiB);
  for (const e of entries) {
    for (const w of e.writes) {
      if ('data' in w) await file.write(w.fileOffset, w.data);
      else await file.writeZeroes(w.fileOffset, w.zeroLength);
    }
  }
  await file.flush();
}
