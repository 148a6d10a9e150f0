/**
 * Finding the disks of an OVA (an OVF package in one tar archive): the archive's
 * members are listed (tar.ts), the OVF descriptor is the first member whose name
 * ends in ".ovf" (the OVF specification puts it first), its disks are read
 * (ovf.ts), and disk N (numbered from 1 in DiskSection order) is opened as a
 * read-only window on the member its File href names (disk-node.ts).
 *
 * Errors name what is wrong: no descriptor, no disks, a disk number the OVF does
 * not have, a blank disk, an href outside the archive or to a member it does not
 * hold, a compressed file (ovf:compression), members past the end (tar.ts).
 */
import { ImageFormatError } from '../../node.js';
import type { ProtocolNode } from '../../protocols/protocol.js';
import { OvaDiskNode } from './disk-node.js';
import { type OvfDisk, parseOvfDisks } from './ovf.js';
import { listTarMembers } from './tar.js';

/** Descriptors larger than this are not OVF descriptors. */
const MAX_OVF_BYTES = 16 << 20;

export interface OvaContents {
  disks: OvfDisk[];
  /** Where each member's data lies in the archive. */
  members: Map<string, { offset: number; size: number }>;
}

/** The disks of the OVA in `archive`, and where its members lie. */
export async function readOva(archive: ProtocolNode): Promise<OvaContents> {
  const list = await listTarMembers(archive);
  const ovf = list.find((m) => /\.ovf$/i.test(m.name));
  if (!ovf) throw new ImageFormatError(`${archive.filename}: no OVF descriptor (.ovf) in the OVA`);
  if (ovf.size > MAX_OVF_BYTES) throw new ImageFormatError(`${archive.filename}: the OVF descriptor is larger than 16 MiB`);
  const raw = new Uint8Array(ovf.size);
  await archive.read(ovf.offset, raw);
  const disks = parseOvfDisks(new TextDecoder().decode(raw));
  if (disks.length === 0) throw new ImageFormatError(`${archive.filename}: the OVF descriptor lists no disks`);
  const members = new Map<string, { offset: number; size: number }>();
  for (const m of list) if (m.type === '0') members.set(m.name.replace(/^(\.\/)+/, ''), m);
  return { disks, members };
}

/** Disk `index` (from 1) of the OVA in `archive`, as a read-only protocol node that owns `archive`. */
export async function openOvaDisk(archive: ProtocolNode, index: number): Promise<OvaDiskNode> {
  const { disks, members } = await readOva(archive);
  const disk = disks[index - 1];
  if (!disk) {
    throw new ImageFormatError(`${archive.filename}: the OVA has ${disks.length} disk(s), there is no disk ${index}`);
  }
  const where = `${archive.filename}: OVF disk ${index} ('${disk.diskId}')`;
  if (disk.href === null) throw new ImageFormatError(`${where} is a blank disk without a file`);
  if (disk.compression !== null) throw new ImageFormatError(`${where} is stored ${disk.compression}-compressed, which is not supported`);
  if (/^[a-z][a-z0-9+.-]*:/i.test(disk.href)) {
    throw new ImageFormatError(`${where} refers to '${disk.href}' outside the OVA`);
  }
  const member = members.get(disk.href.replace(/^(\.\/)+/, ''));
  if (!member) throw new ImageFormatError(`${where} refers to '${disk.href}', which the OVA does not hold`);
  return new OvaDiskNode(archive, member.offset, member.size, `${archive.filename}#${index}`);
}
