/**
 * The OVA writer's `-o` options, as `-o help` lists them: those of its VMDK disk
 * that apply (adapter type, tools version, UUID), the hardware version and the
 * manifest switch. Apart from writer.ts so that the format table lists them
 * without loading the writer (and tar-stream).
 */
import { DISK_UUID_OPTION } from '../disk-uuid.js';
import type { CreateOptionSpec } from '../format.js';
import { VMDK_CREATE_OPTIONS } from '../vmdk/create-options.js';

const vmdkOption = (name: string): CreateOptionSpec => VMDK_CREATE_OPTIONS.find((o) => o.name === name)!;

export const OVA_CREATE_OPTIONS: readonly CreateOptionSpec[] = [
  { name: 'size', type: 'size', help: 'Virtual disk size' },
  { ...vmdkOption('adapter_type'), help: 'Disk controller and VMDK adapter type: lsilogic (default), buslogic, ide or legacyESX' },
  { name: 'hwversion', type: 'str', help: "VMware virtual hardware version (the OVF's vmx-NN and the VMDK's; default 7)" },
  vmdkOption('toolsversion'),
  DISK_UUID_OPTION,
  { name: 'manifest', type: 'bool', help: 'Add a manifest (.mf) with SHA-256 digests of the files', default: 'on' },
];
