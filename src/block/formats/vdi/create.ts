/**
 * Creating a VDI image (driver.ts lists the options): a dynamic image is the
 * header and an all-unallocated block map; a static one maps every block in order
 * and sizes the file to hold them all (sparse, as qemu-img leaves it).
 */
import { parseBool } from '../../options.js';
import { openProtocol } from '../../protocols/index.js';
import type { CreateRequest } from '../format.js';
import { diskUuidFromOptions } from '../disk-uuid.js';
import { VDI_CREATE_OPTIONS } from './create-options.js';
import { newVdiHeader, serializeVdiHeader, VDI_MAX_BLOCKS, VDI_UNALLOCATED } from './header.js';

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
