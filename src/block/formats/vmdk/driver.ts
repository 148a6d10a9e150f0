/**
 * The vmdk format driver: probing (a sparse extent's "KDMV" or "COWD" magic, or a
 * text descriptor, which may be padded with NULs), opening (VmdkNode: monolithic and split, sparse, flat and
 * stream-optimized images, vmfs and vmfsSparse descriptors), creating with
 * qemu-img 7.2's options (create.ts) and the check qemu-img runs for VMDK
 * (check.ts). qemu-img
 * does not measure VMDK, and neither does this driver. Each of those modules
 * loads when its operation is first asked for.
 */
import type { FormatDriver } from '../format.js';
import { VMDK_CREATE_OPTIONS } from './create-options.js';
import { looksLikeDescriptor } from './descriptor.js';
import { COWD_MAGIC, KDMV_MAGIC, sparseMagic } from './sparse-header.js';

function probeVmdk(head: Uint8Array): number {
  const magic = sparseMagic(head);
  if (magic === KDMV_MAGIC || magic === COWD_MAGIC) return 100;
  const nul = head.indexOf(0);
  return looksLikeDescriptor(new TextDecoder('latin1').decode(nul < 0 ? head : head.subarray(0, nul))) ? 100 : 0;
}

/**
 * Whether a new image with these options is one file. Split and flat subformats
 * write a descriptor that names its extent files after the image's own name, so
 * an image created under a temporary name and renamed afterwards would keep
 * extents named after the temporary one: callers that do that (convert) must
 * create such images under their final name.
 */
export function vmdkCreatesOneFile(options: Map<string, string>): boolean {
  const subformat = options.get('subformat') ?? 'monolithicSparse';
  return subformat === 'monolithicSparse' || subformat === 'streamOptimized';
}

export const vmdkFormat: FormatDriver = {
  name: 'vmdk',
  createsOneFile: vmdkCreatesOneFile,
  probe: probeVmdk,
  open: async (file, ctx) => (await import('./node.js')).VmdkNode.open(file, ctx),
  create: async (req) => (await import('./create.js')).createVmdk(req),
  createOptions: VMDK_CREATE_OPTIONS,
  check: async (file, opts) => (await import('./check.js')).checkVmdk(file, opts),
};
