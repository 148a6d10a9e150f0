/**
 * Parent locators of differencing VHDs: where a child records the path of its
 * parent (Microsoft's VHD specification, dynamic header).
 *
 * Reading: the backing file name comes from the "W2ru" locator (a path relative
 * to the child, UTF-16LE, e.g. ".\base.vhd"), else "W2ku" (absolute, UTF-16LE),
 * else "MacX" (a UTF-8 file:// URL), else the parent's name in the header.
 * Backslashes become slashes and a leading ".\" is dropped, so the name resolves
 * like any backing file name (relative to the child's folder).
 *
 * Writing: a new child gets a W2ru locator (the parent's path relative to the
 * child's folder) and a W2ku locator (the parent's absolute path), each in whole sectors after the
 * block allocation table. Data space is written in bytes, as Windows does (the
 * specification says sectors; readers go by the data length).
 */
import { ImageFormatError } from '../../node.js';
import type { ProtocolNode } from '../../protocols/protocol.js';
import type { ParentFields, ParentLocator } from './footer.js';

const PREFERRED = ['W2ru', 'W2ku', 'MacX'];

function windowsPath(bytes: Uint8Array): string {
  let text = '';
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    const unit = bytes[i]! | (bytes[i + 1]! << 8);
    if (unit === 0) break;
    text += String.fromCharCode(unit);
  }
  return text.replace(/\\/g, '/').replace(/^\.\//, '');
}

/** The backing file name a differencing disk records (see the header comment). */
export async function parentFileName(file: ProtocolNode, parent: ParentFields): Promise<string> {
  for (const code of PREFERRED) {
    const loc = parent.locators.find((l) => l.code === code);
    if (!loc || loc.dataLength === 0) continue;
    const data = new Uint8Array(loc.dataLength);
    await file.read(loc.dataOffset, data);
    const name = code === 'MacX' ? decodeURIComponent(new TextDecoder().decode(data).replace(/\0.*$/s, '').replace(/^file:\/\/(localhost)?/, '')) : windowsPath(data);
    if (name !== '') return name;
  }
  if (parent.name === '') throw new ImageFormatError(`${file.filename}: differencing VHD names no parent (no parent locator, no parent name)`);
  return parent.name;
}

function utf16le(text: string): Uint8Array {
  const out = new Uint8Array(text.length * 2);
  for (let i = 0; i < text.length; i++) {
    out[i * 2] = text.charCodeAt(i) & 0xff;
    out[i * 2 + 1] = text.charCodeAt(i) >> 8;
  }
  return out;
}

/**
 * The locators of a new child whose parent is `relative` (to the child's folder)
 * and `absolute`, with their data laid out in whole sectors from byte `at`.
 */
export function newParentLocators(relative: string, absolute: string, at: number): { locators: ParentLocator[]; data: Uint8Array } {
  const rel = `.\\${relative.replace(/\//g, '\\')}`;
  const parts = [['W2ru', utf16le(rel)], ['W2ku', utf16le(absolute.replace(/\//g, '\\'))]] as const;
  const locators: ParentLocator[] = [];
  const chunks: Uint8Array[] = [];
  let offset = at;
  for (const [code, bytes] of parts) {
    const space = Math.ceil(bytes.length / 512) * 512;
    const chunk = new Uint8Array(space);
    chunk.set(bytes);
    locators.push({ code, dataSpace: space, dataLength: bytes.length, dataOffset: offset });
    chunks.push(chunk);
    offset += space;
  }
  const data = new Uint8Array(offset - at);
  let pos = 0;
  for (const c of chunks) {
    data.set(c, pos);
    pos += c.length;
  }
  return { locators, data };
}
