/**
 * `img info`: what an image's header says about it, as qemu-img 7.2 reports it.
 *
 * collectImageInfo opens the image (without its backing chain, read-only) and
 * fills qemu's ImageInfo fields: virtual size (rounded up to 512-byte sectors as
 * QEMU counts it), host allocation, cluster size, dirty flag, backing file name as
 * recorded and resolved the way QEMU resolves it (relative to the folder of the
 * image naming it, without normalising the path), backing format, snapshots and
 * the format-specific block. The name shown is qemu-img's (json: names rewritten,
 * NBD URIs normalised: json-filename.ts displayName), and a raw image on a
 * protocol whose QEMU driver has no image info (NBD, HTTP) shows no dirty flag.
 * With `backingChain` it then follows the resolved
 * backing names one image at a time; a name that comes back is an error, like
 * qemu-img's "creates an infinite loop". Everything is collected before anything is
 * printed, so an error prints nothing but the message.
 *
 * formatImageInfoJson / formatImageInfoHuman print the result in qemu-img's two
 * output shapes (one object, or an array / blank-line separated list for a chain).
 */
import { closeImage, imageSpec, openImageReporting } from '../open.js';
import { displayFormat, displayName } from '../json-filename.js';
import { findProtocol } from '../protocols/index.js';
import type { FormatSpecificInfo, SnapshotInfo } from '../formats/format.js';
import { dumpQObject, formatSnapshotTable, sizeToStr, toQemuJson } from '../../cli/format-output.js';

/** qemu's ImageInfo, keys spelled and inserted in QAPI order. */
export interface ImageInfo {
  filename: string;
  format: string;
  'dirty-flag'?: boolean;
  'actual-size'?: number;
  'virtual-size': number;
  'cluster-size'?: number;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
  'backing-filename-format'?: string;
  snapshots?: SnapshotInfo[];
  'format-specific'?: FormatSpecificInfo;
}

export interface InfoOptions {
  format?: string;
  backingChain?: boolean;
  forceShare?: boolean;
}

const SECTOR = 512;

/** The info of `filename`, and with `backingChain` of every image below it (top first). */
export async function collectImageInfo(filename: string, opts: InfoOptions = {}): Promise<ImageInfo[]> {
  const list: ImageInfo[] = [];
  const seen = new Set<string>();
  let name: string | undefined = filename;
  let format = opts.format;
  while (name !== undefined) {
    if (seen.has(name)) throw new Error(`Backing file '${name}' creates an infinite loop.`);
    seen.add(name);
    const info = await imageInfo(name, format, opts.forceShare ?? false);
    list.push(info);
    if (!opts.backingChain) break;
    name = info['full-backing-filename'];
    format = info['backing-filename-format'];
  }
  return list;
}

async function imageInfo(filename: string, format: string | undefined, forceShare: boolean): Promise<ImageInfo> {
  const image = await openImageReporting(filename, { format, readOnly: true, backing: false, forceShare });
  try {
    const actual = await image.allocatedSize();
    const snapshots = image.listSnapshots?.() ?? [];
    const protocolName = imageSpec(filename, format).protocolName;
    const info: ImageInfo = {
      filename: displayName(filename, image.driver),
      format: displayFormat(filename, image.driver),
      'dirty-flag': image.driver === 'raw' && findProtocol(protocolName)?.withoutImageInfo ? undefined : (image.dirtyFlag ?? false),
      'actual-size': actual >= 0 ? actual : undefined,
      'virtual-size': Math.ceil(image.size() / SECTOR) * SECTOR,
      'cluster-size': image.clusterSize,
    };
    if (image.backingFilename !== null) {
      info['backing-filename'] = image.backingFilename;
      info['full-backing-filename'] = fullBackingFilename(filename, image.backingFilename);
    }
    if (image.backingFormat !== null) info['backing-filename-format'] = image.backingFormat;
    if (snapshots.length > 0) info.snapshots = snapshots;
    const specific = image.formatSpecific?.();
    if (specific) info['format-specific'] = specific;
    return info;
  } finally {
    await closeImage(image);
  }
}

/**
 * QEMU's path_combine: a relative backing name is taken relative to the folder part
 * of the image's name, by plain concatenation (no normalisation).
 */
export function fullBackingFilename(imageFilename: string, backing: string): string {
  if (backing.startsWith('/') || /^[a-z][a-z0-9+.-]*:/i.test(backing)) return backing;
  const slash = imageFilename.lastIndexOf('/');
  return slash < 0 ? backing : imageFilename.slice(0, slash + 1) + backing;
}

/** `--output=json`: one object, or an array with --backing-chain. */
export function formatImageInfoJson(list: readonly ImageInfo[], chain: boolean): string {
  return `${toQemuJson(chain ? list : list[0])}\n`;
}

/** The human shape; chain members are separated by a blank line. */
export function formatImageInfoHuman(list: readonly ImageInfo[]): string {
  return list.map(humanInfo).join('\n');
}

function humanInfo(info: ImageInfo): string {
  const actual = info['actual-size'];
  let out =
    `image: ${info.filename}\n` +
    `file format: ${info.format}\n` +
    `virtual size: ${sizeToStr(info['virtual-size'])} (${info['virtual-size']} bytes)\n` +
    `disk size: ${actual === undefined ? 'unavailable' : sizeToStr(actual)}\n`;
  if (info['cluster-size'] !== undefined) out += `cluster_size: ${info['cluster-size']}\n`;
  if (info['dirty-flag']) out += 'cleanly shut down: no\n';
  const backing = info['backing-filename'];
  if (backing !== undefined) {
    const full = info['full-backing-filename'];
    let line = `backing file: ${backing}`;
    if (full === undefined) line += ' (cannot determine actual path)';
    else if (full !== backing) line += ` (actual path: ${full})`;
    out += `${line}\n`;
  }
  if (info['backing-filename-format'] !== undefined) out += `backing file format: ${info['backing-filename-format']}\n`;
  if (info.snapshots) out += `Snapshot list:\n${formatSnapshotTable(info.snapshots)}`;
  const specific = info['format-specific'];
  if (specific) out += `Format specific information:\n${dumpQObject(specific.data, 1)}`;
  return out;
}
