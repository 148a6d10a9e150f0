/**
 * Creating a VHDX image with qemu-img 7.2's options and layout: the file
 * identifier, two headers and two region tables in the first MiB, the log at
 * 1 MiB (log_size, default 1 MiB, rounded up to a MiB), the BAT after it, the
 * metadata region (1 MiB) after the BAT, and the data area from there.
 *
 * block_size 0 picks QEMU's size for the disk (8 MiB up to 1 GiB, 16 MiB up to
 * 100 GiB, 32 MiB up to 32 TiB, 64 MiB above); a given one is rounded up to a
 * MiB, capped at 256 MiB and must be a power of two. Dynamic images start with
 * every payload entry ZERO (block_state_zero=on, the default) or NOT_PRESENT.
 * Fixed images lay every block out in the data area (the file is sized to hold
 * them, sparse) with entries FULLY_PRESENT, or ZERO keeping their place when
 * block_state_zero=on (the block is then stored there on first use). Each new
 * image gets fresh FileWriteGuid and DataWriteGuid values and a page 83
 * VirtualDiskId from the `uuid` option (disk-uuid.ts).
 *
 * Everything is validated before the file is touched; the file identifier is
 * written last, so a failed creation does not leave a file that opens as VHDX.
 */
import { randomUUID } from 'node:crypto';
import { parseBool, parseSize } from '../../options.js';
import { openProtocol } from '../../protocols/index.js';
import { diskUuidFromOptions } from '../disk-uuid.js';
import type { CreateRequest } from '../format.js';
import { Bat, BAT_SECTOR, batGeometry, BLOCK_FULLY_PRESENT, BLOCK_NOT_PRESENT, BLOCK_ZERO, payloadIndex } from './bat.js';
import {
  BAT_REGION_GUID,
  HEADER_AREA_BYTES,
  HEADER_OFFSETS,
  METADATA_REGION_GUID,
  MiB,
  REGION_TABLE_OFFSETS,
  serializeFileIdentifier,
  serializeHeader,
  serializeRegionTable,
  ZERO_GUID,
} from './layout.js';
import { MAX_BLOCK_SIZE, MAX_DISK_SIZE, MIN_BLOCK_SIZE, serializeMetadata } from './metadata.js';
import { VHDX_CREATE_OPTIONS } from './create-options.js';

const GiB = 2 ** 30;
/** BAT bytes written per request when the table is not all zeroes (only its entries' sectors are written). */
const BAT_WRITE_CHUNK = 4 * MiB;

const roundUp = (n: number, to: number) => Math.ceil(n / to) * to;

function autoBlockSize(size: number): number {
  if (size > 32 * 2 ** 40) return 64 * MiB;
  if (size > 100 * GiB) return 32 * MiB;
  if (size > GiB) return 16 * MiB;
  return 8 * MiB;
}

interface VhdxPlan {
  diskSize: number;
  blockSize: number;
  logSize: number;
  fixed: boolean;
  zeroState: boolean;
  diskId: string;
}

function plan(req: CreateRequest): VhdxPlan {
  for (const key of req.options.keys()) {
    if (!VHDX_CREATE_OPTIONS.some((o) => o.name === key)) throw new Error(`Invalid parameter '${key}'`);
  }
  const subformat = req.options.get('subformat') ?? 'dynamic';
  if (subformat !== 'dynamic' && subformat !== 'fixed') throw new Error(`Parameter 'subformat' does not accept value '${subformat}'`);
  const zeroState = parseBool(req.options.get('block_state_zero') ?? 'on', 'block_state_zero');
  const diskSize = roundUp(req.size, 512);
  if (diskSize > MAX_DISK_SIZE) throw new Error('Image size too large; max of 64TB');
  const logSize = roundUp(parseSize(req.options.get('log_size') ?? String(MiB), 'log_size'), MiB);
  if (logSize === 0 || logSize > 2 ** 32 - MiB) throw new Error('Log size must be a multiple of 1 MB');
  let blockSize = parseSize(req.options.get('block_size') ?? '0', 'block_size');
  blockSize = blockSize === 0 ? autoBlockSize(diskSize) : Math.min(Math.max(roundUp(blockSize, MiB), MIN_BLOCK_SIZE), MAX_BLOCK_SIZE);
  if ((blockSize & (blockSize - 1)) !== 0) throw new Error('Block size must be a power of two');
  return { diskSize, blockSize, logSize, fixed: subformat === 'fixed', zeroState, diskId: diskUuidFromOptions(req.options) };
}

export async function createVhdx(req: CreateRequest): Promise<void> {
  const p = plan(req);
  const geometry = batGeometry(p.diskSize, p.blockSize, 512, false);
  const logOffset = HEADER_AREA_BYTES;
  const batOffset = logOffset + p.logSize;
  const batLength = roundUp(Math.max(geometry.entries * 8, 1), MiB);
  const metadataOffset = batOffset + batLength;
  const dataStart = metadataOffset + MiB;
  const bat = new Bat(new Uint8Array(batLength));
  const state = p.fixed ? (p.zeroState ? BLOCK_ZERO : BLOCK_FULLY_PRESENT) : p.zeroState ? BLOCK_ZERO : BLOCK_NOT_PRESENT;
  for (let b = 0; b < geometry.payloadBlocks; b++) {
    bat.set(payloadIndex(geometry, b), state, p.fixed ? dataStart + b * p.blockSize : 0);
  }
  const fileEnd = p.fixed ? dataStart + geometry.payloadBlocks * p.blockSize : dataStart;
  const header = {
    fileWriteGuid: randomUUID(),
    dataWriteGuid: randomUUID(),
    logGuid: ZERO_GUID,
    logLength: p.logSize,
    logOffset,
  };
  const regions = serializeRegionTable([
    { guid: BAT_REGION_GUID, offset: batOffset, length: batLength, required: true },
    { guid: METADATA_REGION_GUID, offset: metadataOffset, length: MiB, required: true },
  ]);
  const metadata = serializeMetadata({
    blockSize: p.blockSize,
    leaveBlocksAllocated: p.fixed,
    diskSize: p.diskSize,
    logicalSectorSize: 512,
    physicalSectorSize: 512,
    diskId: p.diskId,
  });
  const file = await openProtocol(req.filename, { create: true });
  try {
    await file.truncate(fileEnd);
    if (state !== BLOCK_NOT_PRESENT) {
      // The rest of the region is zeroes already (the file was grown sparse).
      const used = roundUp(geometry.entries * 8, BAT_SECTOR);
      for (let at = 0; at < used; at += BAT_WRITE_CHUNK) {
        await file.write(batOffset + at, bat.bytes.subarray(at, Math.min(used, at + BAT_WRITE_CHUNK)));
      }
    }
    await file.write(metadataOffset, metadata);
    for (const at of REGION_TABLE_OFFSETS) await file.write(at, regions);
    await file.write(HEADER_OFFSETS[0], serializeHeader({ ...header, sequence: 1n }));
    await file.write(HEADER_OFFSETS[1], serializeHeader({ ...header, sequence: 2n }));
    await file.flush();
    await file.write(0, serializeFileIdentifier('tsemu'));
    await file.flush();
  } finally {
    await file.close();
  }
}
