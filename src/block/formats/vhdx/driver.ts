/**
 * The vhdx format driver: probing (the "vhdxfile" file identifier), opening
 * (VhdxNode, which replays a pending log when writable), creating with qemu-img
 * 7.2's options (create.ts) and the check qemu-img runs for VHDX (check.ts).
 * qemu-img 7.2 does not measure VHDX, and neither does this driver. Each of
 * those modules loads when its operation is first asked for.
 */
import type { FormatDriver } from '../format.js';
import { VHDX_CREATE_OPTIONS } from './create-options.js';
import { isVhdx } from './layout.js';

export const vhdxFormat: FormatDriver = {
  name: 'vhdx',
  probe: (head) => (isVhdx(head) ? 100 : 0),
  open: async (file, ctx) => (await import('./node.js')).VhdxNode.open(file, ctx),
  create: async (req) => (await import('./create.js')).createVhdx(req),
  createOptions: VHDX_CREATE_OPTIONS,
  check: async (file, opts) => (await import('./check.js')).checkVhdx(file, opts),
};
