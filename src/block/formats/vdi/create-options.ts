/**
 * VDI's `-o` options for create (qemu-img 7.2's), as `-o help` lists them. Apart
 * from create.ts so that the format table lists them without loading the code
 * that creates images.
 */
import { DISK_UUID_OPTION } from '../disk-uuid.js';
import type { CreateOptionSpec } from '../format.js';

export const VDI_CREATE_OPTIONS: readonly CreateOptionSpec[] = [
  { name: 'size', type: 'size', help: 'Virtual disk size' },
  { name: 'static', type: 'bool', help: 'VDI static (pre-allocated) image', default: 'off' },
  DISK_UUID_OPTION,
];
