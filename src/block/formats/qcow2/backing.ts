/**
 * Changing the backing file a qcow2 header records (the last step of `img
 * rebase`; QEMU's qcow2_change_backing_file).
 *
 * The backing file name follows the header extensions in the first cluster and
 * the backing format is one of those extensions, so both change together: the
 * parsed header takes the new name and format (a removed backing file takes its
 * format extension with it) and writeHeader() rewrites the header, extensions
 * and name in one write followed by a sync. Either the old header or the new one
 * is on disk; a header that would not fit in the first cluster is refused before
 * anything is written, and a failed write restores the header in memory.
 */
import { ImageFormatError } from '../../node.js';
import { MAX_BACKING_FORMAT_BYTES, MAX_BACKING_NAME_BYTES } from './header.js';
import type { Qcow2Node } from './node.js';

export async function setQcow2BackingFile(node: Qcow2Node, name: string | null, format: string | null): Promise<void> {
  if (name !== null && Buffer.byteLength(name) > MAX_BACKING_NAME_BYTES) throw new ImageFormatError('File name too long');
  if (format !== null && Buffer.byteLength(format) > MAX_BACKING_FORMAT_BYTES) {
    throw new ImageFormatError('Backing format name too long');
  }
  await node.exclusive(async () => {
    const h = node.header;
    const old = { name: h.backingFilename, format: h.backingFormat };
    h.backingFilename = name;
    h.backingFormat = name === null ? null : format;
    try {
      await node.writeHeader();
    } catch (e) {
      h.backingFilename = old.name;
      h.backingFormat = old.format;
      throw e;
    }
  });
}
