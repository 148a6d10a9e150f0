/**
 * VHDX's `-o` options for create (qemu-img 7.2's), as `-o help` lists them. Apart
 * from create.ts so that the format table lists them without loading the code
 * that creates images.
 */
import { DISK_UUID_OPTION } from '../disk-uuid.js';
import type { CreateOptionSpec } from '../format.js';
import { MiB } from './layout.js';

export const VHDX_CREATE_OPTIONS: readonly CreateOptionSpec[] = [
  { name: 'size', type: 'size', help: 'Virtual disk size; max of 64TB.' },
  { name: 'log_size', type: 'size', help: 'Log size; min 1MB.', default: String(MiB) },
  { name: 'block_size', type: 'size', help: 'Block Size; min 1MB, max 256MB. 0 means auto-calculate based on image size.', default: '0' },
  { name: 'subformat', type: 'str', help: "VHDX format type, can be either 'dynamic' or 'fixed'. Default is 'dynamic'." },
  {
    name: 'block_state_zero',
    type: 'bool',
    help: "Force use of payload blocks of type 'ZERO'. Non-standard, but default.  Do not set to 'off' when using 'qemu-img convert' with subformat=dynamic.",
  },
  DISK_UUID_OPTION,
];
