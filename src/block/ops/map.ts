/**
 * `img map`: where an image's content comes from, extent by extent, as qemu-img
 * 7.2 prints it.
 *
 * For each run the chain's block status (chain.ts) names the layer that defines
 * it; that layer's own status says whether the run is data or zeroes and where it
 * sits in the layer's file. A run no layer defines reads as zeroes and is reported
 * at the layer where the walk ends: the bottom of the chain, or the first layer
 * whose backing image is too short to reach it. Entry fields follow qemu-img: depth
 * (layers above the defining one), present (some layer defines it), zero, data, and
 * offset/file when the run is stored contiguously in a file.
 *
 * Sizes count in whole 512-byte sectors as in QEMU (the tail past an image's end
 * reads as zeroes). Adjacent runs merge when every field agrees and their file
 * offsets continue. The human output lists only data runs ("Offset Length Mapped to File"; a data
 * run with no file offset, e.g. compressed, is an error there); once a run is
 * printed, a following non-data or zero run is treated as plain zero, which lets
 * the hidden runs coalesce the way qemu-img's do.
 */
import type { BlockNode } from '../node.js';
import type { ImageNode } from '../formats/format.js';
import { closeImage, openImageReporting } from '../open.js';
import { parseSize } from '../options.js';
import { chainBlockStatus, chainLayers } from './chain.js';
import type { OutputFormat } from '../../cli/format-output.js';

export interface MapEntry {
  start: number;
  length: number;
  depth: number;
  present: boolean;
  zero: boolean;
  data: boolean;
  /** Host offset in `filename`, when the run is stored there contiguously. */
  offset?: number;
  filename?: string;
}

export interface MapArgs {
  filename: string;
  format?: string;
  startOffset?: string;
  maxLength?: string;
  output: OutputFormat;
  forceShare?: boolean;
}

/** The status of one run at `offset` (at most `length` bytes) of the chain under `top`. */
export async function mapRun(top: BlockNode, layers: readonly BlockNode[], offset: number, length: number): Promise<MapEntry> {
  const size = top.size();
  if (offset >= size) return sectorTail(top, offset, length);
  const st = await chainBlockStatus(top, offset, length);
  let depth = st.depth;
  if (!st.allocated) {
    depth = 0;
    while (depth + 1 < layers.length && layers[depth + 1]!.size() > offset) depth++;
  }
  // The defining (or last visited) layer's own view: data/zero, and where it is stored
  // (an unallocated extended-L2 subcluster still has a host cluster).
  const layer = layers[depth]!;
  const own = await layer.blockStatus(offset, st.length);
  const entry: MapEntry = {
    start: offset,
    length: Math.min(st.length, own.length),
    depth,
    present: st.allocated,
    zero: st.allocated ? own.zero : true,
    data: st.allocated && own.data,
  };
  if (own.hostOffset !== null) {
    entry.offset = own.hostOffset;
    entry.filename = (layer.file ?? layer).filename;
  }
  return entry;
}

/**
 * QEMU counts an image in whole 512-byte sectors: the rest of the last sector, past
 * the end, is stored zeroes continuing the last byte's mapping.
 */
async function sectorTail(top: BlockNode, offset: number, length: number): Promise<MapEntry> {
  const size = top.size();
  const last = await top.blockStatus(size - 1, 1);
  const entry: MapEntry = { start: offset, length, depth: 0, present: true, zero: true, data: false };
  if (last.hostOffset !== null) {
    entry.offset = last.hostOffset + 1 + (offset - size);
    entry.filename = (top.file ?? top).filename;
  }
  return entry;
}

/** qemu-img's rule for joining `next` onto `curr`. */
export function mergeable(curr: MapEntry, next: MapEntry): boolean {
  if (curr.length === 0) return false;
  if (curr.zero !== next.zero || curr.data !== next.data || curr.depth !== next.depth || curr.present !== next.present) {
    return false;
  }
  if ((curr.filename === undefined) !== (next.filename === undefined) || curr.filename !== next.filename) return false;
  if ((curr.offset === undefined) !== (next.offset === undefined)) return false;
  return curr.offset === undefined || curr.offset + curr.length === next.offset;
}

function parseOffset(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined;
  try {
    return parseSize(text, what);
  } catch {
    throw new Error(
      `Invalid ${what} specified. You may use k, M, G, T, P or E suffixes for\n` +
        'kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.',
    );
  }
}

/**
 * Runs the map and writes its output through `write` as it goes (a large image
 * has many extents). Throws on errors, after whatever was already written.
 */
export async function mapImage(a: MapArgs, write: (text: string) => void): Promise<void> {
  const start = parseOffset(a.startOffset, 'start offset') ?? 0;
  const maxLength = parseOffset(a.maxLength, 'max length');
  const image: ImageNode = await openImageReporting(a.filename, {
    format: a.format,
    readOnly: true,
    forceShare: a.forceShare,
  });
  try {
    const layers = chainLayers(image);
    let end = Math.ceil(image.size() / 512) * 512;
    if (maxLength !== undefined) end = Math.min(start + maxLength, end);
    const printer = a.output === 'json' ? new JsonMapPrinter(write) : new HumanMapPrinter(write);
    let curr: MapEntry = { start, length: 0, depth: 0, present: false, zero: false, data: false };
    while (curr.start + curr.length < end) {
      const offset = curr.start + curr.length;
      let next: MapEntry;
      try {
        next = await mapRun(image, layers, offset, end - offset);
      } catch (e) {
        throw new Error(`Could not read file metadata: ${(e as Error).message}`);
      }
      if (mergeable(curr, next)) {
        curr.length += next.length;
        continue;
      }
      if (curr.length > 0) printer.entry(curr, next);
      curr = next;
    }
    printer.entry(curr, null);
    printer.end();
  } finally {
    await closeImage(image);
  }
}

interface MapPrinter {
  /** Prints `e`; `next` is the entry that follows (null for the last). */
  entry(e: MapEntry, next: MapEntry | null): void;
  end(): void;
}

class JsonMapPrinter implements MapPrinter {
  constructor(private readonly write: (text: string) => void) {
    write('[');
  }

  entry(e: MapEntry, next: MapEntry | null): void {
    let text =
      `{ "start": ${e.start}, "length": ${e.length}, "depth": ${e.depth}, "present": ${e.present}, ` +
      `"zero": ${e.zero}, "data": ${e.data}`;
    if (e.offset !== undefined) text += `, "offset": ${e.offset}`;
    this.write(`${text}}${next ? ',\n' : ''}`);
  }

  end(): void {
    this.write(']\n');
  }
}

const hex = (n: number) => (n === 0 ? '0' : `0x${n.toString(16)}`);

class HumanMapPrinter implements MapPrinter {
  constructor(private readonly write: (text: string) => void) {
    write(`${'Offset'.padEnd(16)}${'Length'.padEnd(16)}${'Mapped to'.padEnd(16)}File\n`);
  }

  entry(e: MapEntry, next: MapEntry | null): void {
    if (e.data && e.offset === undefined) throw new Error('File contains external, encrypted or compressed clusters.');
    if (e.data && !e.zero) {
      this.write(`${hex(e.start).padEnd(16)}${hex(e.length).padEnd(16)}${hex(e.offset ?? 0).padEnd(16)}${e.filename ?? ''}\n`);
    }
    if (next && (!next.data || next.zero)) {
      next.data = false;
      next.zero = true;
    }
  }

  end(): void {}
}
