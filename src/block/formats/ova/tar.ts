/**
 * Reading the tar archive of an OVA file (POSIX ustar, as OVF packages use it):
 * listing an archive's members as byte ranges of the archive. Writing is
 * tar-stream's pack() (writer.ts); reading is done here because tar-stream reads
 * an archive front to back only, while a disk inside an appliance is read at
 * random offsets (a guest's or convert's requests, a backing chain) without
 * streaming the whole file first: the member list is enough for that.
 *
 * Layout: every member is a 512-byte header (name, octal mode/uid/gid/size/mtime,
 * checksum, type flag, "ustar" magic, name prefix) followed by its data padded
 * to 512 bytes; two zero blocks end the archive. Sizes of 8 GiB and more use the
 * base-256 form (high bit of the field's first byte set), as GNU tar and
 * VirtualBox write them. Reading also understands the extensions that carry long
 * names or large sizes for the next member: pax extended headers ('x': path and
 * size records; 'g' global headers are skipped) and GNU long names ('L').
 *
 * listTarMembers never trusts the archive: a header with a wrong checksum, a
 * size field that is not a number, a member whose data runs past the end of the
 * file, or more than MAX_MEMBERS members is an ImageFormatError naming it. The
 * end is the first zero block or the end of the file.
 */
import { ImageFormatError } from '../../node.js';
import type { ProtocolNode } from '../../protocols/protocol.js';

const TAR_BLOCK = 512;
const MAX_MEMBERS = 4096;
/** pax and GNU long-name records larger than this are not names. */
const MAX_EXTENSION_BYTES = 1 << 20;

export interface TarMember {
  name: string;
  /** Type flag: '0' a regular file, '5' a folder, … */
  type: string;
  /** Where the member's data starts in the archive. */
  offset: number;
  size: number;
}

const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder();

function text(buf: Uint8Array, at: number, n: number): string {
  const field = buf.subarray(at, at + n);
  const nul = field.indexOf(0);
  return utf8.decode(nul < 0 ? field : field.subarray(0, nul));
}

/** A numeric header field: octal text, or base-256 when the first byte has its high bit set. */
function numberField(buf: Uint8Array, at: number, n: number, what: string): number {
  if (buf[at]! & 0x80) {
    if (buf[at] !== 0x80) throw new ImageFormatError(`invalid tar archive: negative or huge ${what}`);
    let v = 0;
    for (let i = at + 1; i < at + n; i++) v = v * 256 + buf[i]!;
    if (!Number.isSafeInteger(v)) throw new ImageFormatError(`invalid tar archive: ${what} out of range`);
    return v;
  }
  const s = latin1.decode(buf.subarray(at, at + n)).replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new ImageFormatError(`invalid tar archive: ${what} '${s.replace(/[^\x20-\x7e]/g, '?')}' is not an octal number`);
  return parseInt(s, 8);
}

export function looksLikeTar(head: Uint8Array): boolean {
  return head.length >= TAR_BLOCK && latin1.decode(head.subarray(257, 262)) === 'ustar' && checksumOk(head);
}

function checksumOk(h: Uint8Array): boolean {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < TAR_BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  let stored: number;
  try {
    stored = numberField(h, 148, 8, 'checksum');
  } catch {
    return false;
  }
  return stored === unsigned || stored === signed;
}

/** The records of a pax extended header ("LEN key=value\n" …). */
function paxRecords(data: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  for (let at = 0; at < data.length;) {
    const space = data.indexOf(0x20, at);
    const len = space < 0 ? NaN : Number(latin1.decode(data.subarray(at, space)));
    if (!Number.isSafeInteger(len) || len <= space - at || at + len > data.length) {
      throw new ImageFormatError('invalid tar archive: malformed pax extended header');
    }
    const record = utf8.decode(data.subarray(space + 1, at + len - 1));
    const eq = record.indexOf('=');
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    at += len;
  }
  return out;
}

/** The members of the tar archive in `file`, in archive order. */
export async function listTarMembers(file: ProtocolNode): Promise<TarMember[]> {
  const size = file.size();
  const members: TarMember[] = [];
  const header = new Uint8Array(TAR_BLOCK);
  let next: { name?: string; size?: number } = {};
  for (let at = 0; at + TAR_BLOCK <= size;) {
    await file.read(at, header);
    if (header.every((b) => b === 0)) break;
    if (!checksumOk(header)) {
      throw new ImageFormatError(at === 0 ? `${file.filename} is not a tar archive (an OVA is one)` : `invalid tar archive: bad header checksum at byte ${at}`);
    }
    const type = String.fromCharCode(header[156]!) === '\0' ? '0' : String.fromCharCode(header[156]!);
    const prefix = latin1.decode(header.subarray(257, 262)) === 'ustar' && header[262] === 0 ? text(header, 345, 155) : '';
    const stored = numberField(header, 124, 12, 'member size');
    const memberSize = next.size ?? stored;
    const name = next.name ?? (prefix ? `${prefix}/${text(header, 0, 100)}` : text(header, 0, 100));
    const offset = at + TAR_BLOCK;
    if (offset + memberSize > size) {
      throw new ImageFormatError(`invalid tar archive: member '${name}' (${memberSize} bytes at byte ${offset}) runs past the end of the file (${size} bytes)`);
    }
    at = offset + Math.ceil(memberSize / TAR_BLOCK) * TAR_BLOCK;
    if (type === 'x' || type === 'g' || type === 'L') {
      if (memberSize > MAX_EXTENSION_BYTES) throw new ImageFormatError(`invalid tar archive: ${memberSize}-byte extended header`);
      if (type === 'g') continue;
      const data = new Uint8Array(memberSize);
      await file.read(offset, data);
      if (type === 'L') next = { ...next, name: text(data, 0, data.length) };
      else {
        const records = paxRecords(data);
        const paxSize = records.has('size') ? Number(records.get('size')) : undefined;
        if (paxSize !== undefined && !(Number.isSafeInteger(paxSize) && paxSize >= 0)) throw new ImageFormatError('invalid tar archive: bad pax size record');
        next = { name: records.get('path') ?? next.name, size: paxSize ?? next.size };
      }
      continue;
    }
    next = {};
    if (members.length >= MAX_MEMBERS) throw new ImageFormatError(`invalid tar archive: more than ${MAX_MEMBERS} members`);
    members.push({ name, type, offset, size: memberSize });
  }
  return members;
}
