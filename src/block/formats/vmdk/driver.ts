/**
 * The vmdk format driver: probing (a sparse extent's "KDMV" or "COWD" magic, or a
 * text descriptor, which may be padded with NULs), opening (VmdkNode: monolithic and split, sparse, flat and
 * stream-optimized images, vmfs and vmfsSparse descriptors), creating with
 * qemu-img 7.2's options (create.ts) and the check qemu-img runs for VMDK
 * (check.ts; img check reaches it once FormatDriver has a check hook). qemu-img
 * does not measure VMDK, and neither does this driver.
 */
import type { FileNode } from '../../protocols/file.js';
import type { FormatDriver, ImageNode, OpenContext } from '../format.js';
import { createVmdk, VMDK_CREATE_OPTIONS } from './create.js';
import { looksLikeDescriptor } from './descriptor.js';
import { VmdkNode } from './node.js';
import { COWD_MAGIC, KDMV_MAGIC, sparseMagic } from './sparse-header.js';

function probeVmdk(head: Uint8Array): number {
  const magic = sparseMagic(head);
  if (magic === KDMV_MAGIC || magic === COWD_MAGIC) return 100;
  const nul = head.indexOf(0);
  return looksLikeDescriptor(new TextDecoder('latin1').decode(nul < 0 ? head : head.subarray(0, nul))) ? 100 : 0;
}

export const vmdkFormat: FormatDriver = {
  name: 'vmdk',
  probe: probeVmdk,
  open: (file: FileNode, ctx: OpenContext): Promise<ImageNode> => VmdkNode.open(file, ctx),
  create: createVmdk,
  createOptions: VMDK_CREATE_OPTIONS,
};
