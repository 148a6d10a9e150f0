/**
 * The qcow2 format driver: probing (the magic "QFI\xfb"; the version is checked by open),
 * opening (Qcow2Node, with the chain hooks of chain-hooks.ts and its persistent bitmaps
 * listed in the format-specific info, bitmaps.ts), creating (create.ts), the `-o` option
 * list and sizing a new image for `img measure` (measure.ts).
 */
import type { FileNode } from '../../protocols/file.js';
import type { CreateRequest, FormatDriver, ImageNode, OpenContext } from '../format.js';
import { readQcow2Bitmaps, withBitmapsInfo } from './bitmaps.js';
import { withChainHooks } from './chain-hooks.js';
import { QCOW2_CREATE_OPTIONS, createQcow2 } from './create.js';
import { looksLikeQcow2 } from './header.js';
import { measureQcow2 } from './measure.js';
import { Qcow2Node } from './node.js';

export const qcow2Format: FormatDriver = {
  name: 'qcow2',
  probe: (header: Uint8Array) => (looksLikeQcow2(header) ? 100 : 0),
  open: async (file: FileNode, ctx: OpenContext): Promise<ImageNode> => {
    const node = await Qcow2Node.open(file, ctx);
    const bitmaps = await readQcow2Bitmaps(node);
    const formatSpecific = node.formatSpecific.bind(node);
    node.formatSpecific = () => withBitmapsInfo(formatSpecific(), bitmaps);
    return withChainHooks(node);
  },
  create: (req: CreateRequest) => createQcow2(req),
  createOptions: QCOW2_CREATE_OPTIONS,
  measure: measureQcow2,
};
