/**
 * The vdi format driver: probing (the signature at 0x40), opening (VdiNode),
 * creating with qemu-img 7.2's options (size, static; create.ts) and the check
 * qemu-img runs for VDI (check.ts). qemu-img does not measure VDI, and neither
 * does this driver. Creating, opening and checking load when first asked for.
 *
 * A new image gets a fresh random image UUID (or the one `-o uuid=` names,
 * disk-uuid.ts) and a fresh snapshot UUID, so every created or converted disk is
 * unique to VirtualBox's media registry.
 */
import type { FormatDriver } from '../format.js';
import { VDI_CREATE_OPTIONS } from './create-options.js';
import { looksLikeVdi } from './header.js';

export const vdiFormat: FormatDriver = {
  name: 'vdi',
  probe: (head) => (looksLikeVdi(head) ? 100 : 0),
  open: async (file, ctx) => (await import('./node.js')).VdiNode.open(file, ctx),
  create: async (req) => (await import('./create.js')).createVdi(req),
  createOptions: VDI_CREATE_OPTIONS,
  check: async (file, opts) => (await import('./check.js')).checkVdi(file, opts),
};
