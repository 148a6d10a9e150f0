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
 * names (disk-uuid.ts). qemu-img neither checks
 * nor measures vpc, and neither does this driver.
 */
import { parseBool } from '../../options.js';
import { openProtocol } from '../../protocols/index.js';
import type { ProtocolNode } from '../../protocols/protocol.js';
import type { CreateOptionSpec, CreateRequest, FormatDriver, ImageNode, OpenContext } from '../format.js';
import { DISK_UUID_OPTION, diskUuidFromOptions, uuidBytes } from '../disk-uuid.js';
import {
  chsGeometry,
  DEFAULT_BLOCK_SIZE,
  DISK_DYNAMIC,
  DISK_FIXED,
  DYN_HEADER_BYTES,
  FOOTER_BYTES,
  type Geometry,
  isFooter,
  MAX_GEOMETRY,
  serializeDynHeader,
  serializeFooter,
} from './footer.js';
import { VpcNode } from './node.js';

export const VPC_CREATE_OPTIONS: readonly CreateOptionSpec[] = [
  { name: 'size', type: 'size', help: 'Virtual disk size' },
  { name: 'subformat', type: 'str', help: 'Type of virtual hard disk format. Supported formats are {dynamic (default) | fixed} ' },
  {
    name: 'force_size',
    type: 'bool',
    help: 'Force disk size calculation to use the actual size specified, rather than using the nearest CHS-based calculation',
  },
  DISK_UUID_OPTION,
];

/** Dynamic disks: the largest size the specification allows (2040 GiB). */
const MAX_DYNAMIC_SECTORS = 0xff000000;
const TOO_LARGE = "The image size is too large for file format 'vpc'";

/** The geometry and exact byte size of a new disk of `size` bytes. */
function newDiskSize(size: number, forceSize: boolean): { geometry: Geometry; bytes: number } {
  const sectors = Math.ceil(size / 512);
  if (forceSize) return { geometry: { ...MAX_GEOMETRY }, bytes: sectors * 512 };
  for (let extra = 0; ; extra++) {
    const g = chsGeometry(sectors + extra);
    if (!g) throw new Error(TOO_LARGE);
    const chs = g.cylinders * g.heads * g.sectors;
    if (chs >= sectors) return { geometry: g, bytes: chs * 512 };
  }
}

export async function createVpc(req: CreateRequest): Promise<void> {
  for (const key of req.options.keys()) {
    if (!VPC_CREATE_OPTIONS.some((o) => o.name === key)) throw new Error(`Invalid parameter '${key}'`);
  }
  const subformat = req.options.get('subformat') ?? 'dynamic';
  if (subformat !== 'dynamic' && subformat !== 'fixed') throw new Error(`Parameter 'subformat' does not accept value '${subformat}'`);
  const forceSize = parseBool(req.options.get('force_size') ?? 'off', 'force_size');
  const { geometry, bytes } = newDiskSize(req.size, forceSize);
  const dynamic = subformat === 'dynamic';
  if (dynamic && bytes / 512 > MAX_DYNAMIC_SECTORS) throw new Error(TOO_LARGE);
  const footer = serializeFooter(
    {
      dataOffset: dynamic ? FOOTER_BYTES : -1,
      creatorApp: forceSize ? 'qem2' : 'qemu',
      currentSize: bytes,
      geometry,
      diskType: dynamic ? DISK_DYNAMIC : DISK_FIXED,
    },
    uuidBytes(diskUuidFromOptions(req.options)),
  );
  const file = await openProtocol(req.filename, { create: true });
  try {
    if (dynamic) {
      const entries = Math.ceil(bytes / DEFAULT_BLOCK_SIZE);
      const tableOffset = FOOTER_BYTES + DYN_HEADER_BYTES;
      // Every entry BAT_UNALLOCATED (all ones), padded to a sector.
      const bat = new Uint8Array(Math.ceil((entries * 4) / 512) * 512).fill(0xff);
      const dyn = serializeDynHeader({ tableOffset, maxTableEntries: entries, blockSize: DEFAULT_BLOCK_SIZE });
      await file.writevGrow(0, [footer, dyn, bat, footer]);
    } else {
      if (bytes > 0) await file.truncate(bytes);
      await file.writeGrow(bytes, footer);
    }
    await file.flush();
  } finally {
    await file.close();
  }
}

export const vpcFormat: FormatDriver = {
  name: 'vpc',
  probe: (head: Uint8Array) => (isFooter(head) ? 100 : 0),
  open: (file: ProtocolNode, ctx: OpenContext): Promise<ImageNode> => VpcNode.open(file, ctx),
  create: createVpc,
  createOptions: VPC_CREATE_OPTIONS,
};
