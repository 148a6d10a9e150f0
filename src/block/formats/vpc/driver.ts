/**
 * The vpc (VHD) format driver: probing (the footer copy "conectix" at offset 0,
 * which only dynamic images have: fixed images probe as raw, as in QEMU, and open
 * with -f vpc), opening (VpcNode) and creating with qemu-img 7.2's options.
 *
 * Sizes: without force_size the disk is rounded up to the nearest CHS geometry
 * of the VHD specification (creator "qemu"; readers take the geometry's size);
 * with force_size=on it keeps the exact size and records the largest geometry
 * (creator "qem2"; readers take the footer's size). Dynamic images have 2 MiB
 * blocks and an all-unallocated BAT; fixed images are the disk (sparse) followed
 * by the footer. Every new image gets a random unique id, or the one `-o uuid=`
 * names (disk-uuid.ts).
 *
 * Differencing images (-b PARENT -F vpc; qemu-img 7.2 cannot create them): the
 * parent must be a VHD and the child takes its size, geometry and creator from
 * the parent's footer, records the parent's unique id, modification time and
 * file name in the dynamic header, and its relative and absolute paths in W2ru
 * and W2ku parent locators (parent.ts) placed after the BAT. qemu-img neither checks
 * nor measures vpc, and neither does this driver. Creating (create.ts) and
 * opening load when first asked for.
 */
import type { FormatDriver } from '../format.js';
import { VPC_CREATE_OPTIONS } from './create-options.js';
import { isFooter } from './footer.js';

export const vpcFormat: FormatDriver = {
  name: 'vpc',
  probe: (head) => (isFooter(head) ? 100 : 0),
  open: async (file, ctx) => (await import('./node.js')).VpcNode.open(file, ctx),
  create: async (req) => (await import('./create.js')).createVpc(req),
  createOptions: VPC_CREATE_OPTIONS,
};
