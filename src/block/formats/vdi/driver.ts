/**
 * The vdi format driver: probing (the signature at 0x40), opening (VdiNode),
 * creating with qemu-img 7.2's options (size, static) and the check qemu-img runs
 * for VDI (check.ts).
 *
 * A new image gets a fresh random image UUID (or the one `-o uuid=` names,
 * disk-uuid.ts) and a fresh snapshot UUID, so every created or converted disk is
 * unique to VirtualBox's media registry. A dynamic image is the
 * header and an all-unallocated block map; a static one maps every block in order
 * and sizes the file to hold them all (sparse, as qemu-img leaves it). qemu-img
 * does not measure VDI, and neither does this driver.
 */
import { parseBool } from '../../options.js';
import { openProtocol } from '../../protocols/index.js';
import type { ProtocolNode } from '../../protocols/protocol.js';
import type { CreateOptionSpec, CreateRequest, FormatDriver, ImageNode, OpenContext } from '../format.js';
import { DISK_UUID_OPTION, diskUuidFromOptions } from '../disk-uuid.js';
import { looksLikeVdi, newVdiHeader, serializeVdiHeader, VDI_MAX_BLOCKS, VDI_UNALLOCATED } from './header.js';
import { checkVdi } from './check.js';
import { VdiNode } from './node.js';

export const VDI_CREATE_OPTIONS: readonly CreateOptionSpec[] = [
  { name: 'size', type: 'size', help: 'Virtual disk size' },
  { name: 'static', type: 'bool', help: 'VDI static (pre-allocated) image', default: 'off' },
  DISK_UUID_OPTION,
];

export async function createVdi(req: CreateRequest): Promise<void> {
  for (const key of req.options.keys()) {
    if (!VDI_CREATE_OPTIONS.some((o) => o.name === key)) throw new Error(`Invalid parameter '${key}'`);
  }
  const isStatic = parseBool(req.options.get('static') ?? 'off', 'static');
  const header = newVdiHeader(req.size, isStatic, diskUuidFromOptions(req.options));
  if (header.blocksInImage > VDI_MAX_BLOCKS) {
    throw new Error(`Unsupported VDI image size (size is ${req.size}, max supported is ${VDI_MAX_BLOCKS * header.blockSize})`);
  }
  const meta = new Uint8Array(header.offsetData);
  meta.set(serializeVdiHeader(header), 0);
  const bmap = new DataView(meta.buffer, header.offsetBmap, header.blocksInImage * 4);
  for (let i = 0; i < header.blocksInImage; i++) bmap.setUint32(i * 4, isStatic ? i : VDI_UNALLOCATED, true);
  const file = await openProtocol(req.filename, { create: true });
  try {
    await file.writeGrow(0, meta);
    if (isStatic) await file.truncate(header.offsetData + header.blocksInImage * header.blockSize);
    await file.flush();
  } finally {
    await file.close();
  }
}

export const vdiFormat: FormatDriver = {
  name: 'vdi',
  probe: (head: Uint8Array) => (looksLikeVdi(head) ? 100 : 0),
  open: (file: ProtocolNode, ctx: OpenContext): Promise<ImageNode> => VdiNode.open(file, ctx),
  create: createVdi,
  createOptions: VDI_CREATE_OPTIONS,
  check: checkVdi,
};
