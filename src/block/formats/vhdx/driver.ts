/**
 * The vhdx format driver: probing (the "vhdxfile" file identifier), opening
 * (VhdxNode, which replays a pending log when writable), creating with qemu-img
 * 7.2's options (create.ts) and the check qemu-img runs for VHDX (check.ts).
 * qemu-img 7.2 does not measure VHDX, and neither does this driver.
 */
import type { ProtocolNode } from '../../protocols/protocol.js';
import type { FormatDriver, ImageNode, OpenContext } from '../format.js';
import { checkVhdx } from './check.js';
import { createVhdx, VHDX_CREATE_OPTIONS } from './create.js';
import { isVhdx } from './layout.js';
import { VhdxNode } from './node.js';

export const vhdxFormat: FormatDriver = {
  name: 'vhdx',
  probe: (head: Uint8Array) => (isVhdx(head) ? 100 : 0),
  open: (file: ProtocolNode, ctx: OpenContext): Promise<ImageNode> => VhdxNode.open(file, ctx),
  create: createVhdx,
  createOptions: VHDX_CREATE_OPTIONS,
  check: checkVhdx,
};
