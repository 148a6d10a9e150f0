/**
 * Changing the backing file that an image's header records (the last step of
 * rebase). A node with the setBackingFile hook (chain.ts) does it itself. A qcow2
 * node without the hook is changed through its documented header API (the
 * parsed `header` and writeHeader()): the backing name and the backing-format
 * extension are replaced and the header cluster is rewritten in one write. Other
 * formats cannot record a backing file: "Operation not supported".
 */
import { Qcow2Node } from '../formats/qcow2/node.js';
import { MAX_BACKING_FORMAT_BYTES, MAX_BACKING_NAME_BYTES } from '../formats/qcow2/header.js';
import type { ChainImage } from './chain.js';

export async function changeBackingFile(img: ChainImage, name: string | null, format: string | null): Promise<void> {
  const fail = (why: string): never => {
    throw new Error(`Could not change the backing file to '${name ?? ''}': ${why}`);
  };
  if (img.setBackingFile) {
    await img.setBackingFile(name, format).catch((e: Error) => fail(e.message));
    return;
  }
  if (!(img instanceof Qcow2Node)) return fail('Operation not supported');
  if (name !== null && Buffer.byteLength(name) > MAX_BACKING_NAME_BYTES) return fail('File name too long');
  if (format !== null && Buffer.byteLength(format) > MAX_BACKING_FORMAT_BYTES) return fail('Backing format name too long');
  const h = img.header;
  const old = { name: h.backingFilename, format: h.backingFormat };
  h.backingFilename = name;
  h.backingFormat = name === null ? null : format;
  try {
    await img.writeHeader();
  } catch (e) {
    h.backingFilename = old.name;
    h.backingFormat = old.format;
    fail((e as Error).message);
  }
}
