/**
 * The qcow2 format driver: probing (the magic "QFI\xfb"; the version is checked by open),
 * opening (Qcow2Node, which also answers the chain operations and lists its persistent
 * bitmaps), creating (create.ts), the `-o` option list and sizing a new image for
 * `img measure` (measure.ts), and the check with repair (check.ts). Each of those
 * modules loads when its operation is first asked for: the format table holds
 * every driver, and a command uses one or two of them.
 */
import type { FormatDriver } from '../format.js';
import { QCOW2_CREATE_OPTIONS } from './create-options.js';
import { looksLikeQcow2 } from './header.js';

export const qcow2Format: FormatDriver = {
  name: 'qcow2',
  probe: (header) => (looksLikeQcow2(header) ? 100 : 0),
  open: async (file, ctx) => (await import('./node.js')).Qcow2Node.open(file, ctx),
  create: async (req) => (await import('./create.js')).createQcow2(req),
  createOptions: QCOW2_CREATE_OPTIONS,
  measure: async (req) => (await import('./measure.js')).measureQcow2(req),
  check: async (file, opts) => (await import('./check.js')).checkQcow2(file, opts),
};
