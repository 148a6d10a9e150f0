/**
 * VMDK's `-o` options for create (qemu-img 7.2's), as `-o help` lists them. Apart
 * from create.ts so that the format table (and the OVA writer's option list)
 * lists them without loading the code that creates images.
 */
import { DISK_UUID_OPTION } from '../disk-uuid.js';
import type { CreateOptionSpec } from '../format.js';

/** In qemu-img 7.2's declaration order (the Formatting line's order). */
export const VMDK_CREATE_OPTIONS: readonly CreateOptionSpec[] = [
  { name: 'size', type: 'size', help: 'Virtual disk size' },
  { name: 'adapter_type', type: 'str', help: 'Virtual adapter type, can be one of ide (default), lsilogic, buslogic or legacyESX' },
  { name: 'backing_file', type: 'str', help: 'File name of a base image' },
  { name: 'backing_fmt', type: 'str', help: "Must be 'vmdk' if present" },
  { name: 'compat6', type: 'bool', help: 'VMDK version 6 image', default: 'off' },
  { name: 'hwversion', type: 'str', help: 'VMDK hardware version', default: 'undefined' },
  { name: 'toolsversion', type: 'str', help: 'VMware guest tools version' },
  {
    name: 'subformat',
    type: 'str',
    help: 'VMDK flat extent format, can be one of {monolithicSparse (default) | monolithicFlat | twoGbMaxExtentSparse | twoGbMaxExtentFlat | streamOptimized} ',
  },
  { name: 'zeroed_grain', type: 'bool', help: 'Enable efficient zero writes using the zeroed-grain GTE feature' },
  DISK_UUID_OPTION,
];
