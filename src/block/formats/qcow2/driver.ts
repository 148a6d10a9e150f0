/**
 * The qcow2 format driver: probing (the magic "QFI\xfb"; the version is checked by open),
 * opening (Qcow2Node, which also answers the chain operations and lists its persistent
 * bitmaps), creating (create.ts), the `-o` option list and sizing a new image for
 * `img measure` (measure.ts), and the check with repair (check.ts).
 */
import type { ProtocolNode } from '../../protocols/protocol.js';
import type { CreateRequest, FormatDriver, ImageNode, OpenContext } from '../format.js';
import { checkQcow2 } from './check.js';
import { QCOW2_CREATE_OPTIONS, createQcow2 } from './create.js';
import { looksLikeQcow2 } from './header.js';
import { measureQcow2 } from './measure.js';
import { Qcow2Node } from './node.js';

export const qcow2Format: FormatDriver = {
  name: 'qcow2',
  probe: (header: Uint8Array) => (looksLikeQcow2(header) ? 100 : 0),
  open: (file: ProtocolNode, ctx: OpenContext): Promise<ImageNode> => Qcow2Node.open(file, ctx),
  create: (req: CreateRequest) => createQcow2(req),
  createOptions: QCOW2_CREATE_OPTIONS,
  measure: measureQcow2,
  check: checkQcow2,
};
