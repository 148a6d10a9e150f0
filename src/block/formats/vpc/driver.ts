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
import type { CreateOptionSpec, FormatDriver } from '../format.js';
import { DISK_UUID_OPTION } from '../disk-uuid.js';
import { isFooter } from './footer.js';

export const VPC_CREATE_OPTIONS: readonly CreateOptionSpec[] = [
  { name: 'size', type: 'size', help: 'Virtual disk size' },
  { name: 'subformat', type: 'str', help: 'Type of virtual hard disk format. Supported formats are {dynamic (default) | fixed} ' },
  {
    name: 'force_size',
    type: 'bool',
    help: 'Force disk size calculation to use the actual size specified, rather than using the nearest CHS-based calculation',
  },
  { name: 'backing_file', type: 'str', help: 'File name of the parent image (a differencing VHD)' },
  { name: 'backing_fmt', type: 'str', help: "Must be 'vpc' if present" },
  DISK_UUID_OPTION,
];

export const vpcFormat: FormatDriver = {
  name: 'vpc',
  probe: (head) => (isFooter(head) ? 100 : 0),
  open: async (file, ctx) => (await import('./node.js')).VpcNode.open(file, ctx),
  create: async (req) => (await import('./create.js')).createVpc(req),
  createOptions: VPC_CREATE_OPTIONS,
};
