/**
 * VPC (VHD)'s `-o` options for create (qemu-img 7.2's), as `-o help` lists them. Apart
 * from create.ts so that the format table lists them without loading the code
 * that creates images.
 */
import { DISK_UUID_OPTION } from '../disk-uuid.js';
import type { CreateOptionSpec } from '../format.js';

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
