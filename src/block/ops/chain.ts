/**
 * Block status through a backing chain (QEMU's bdrv_block_status_above), and the
 * image-format hooks that the chain operations (commit, rebase) need beyond
 * ImageNode.
 *
 * chainBlockStatus asks the top node about a range; where the top does not
 * allocate it, the question goes down to the backing node for the same range,
 * and so on until a layer allocates it, the chain ends (the range reads as
 * zeroes), or the walk reaches `base` (the range is whatever `base` holds: not
 * allocated "above base", content unknown). A backing node shorter than its
 * overlay reads as zeroes past its end, so the walk stops there too.
 *
 * openChain opens an image and its backing chain layer by layer so that one
 * chosen layer (the commit target) can be opened writable while the others stay
 * read-only; open.ts opens every backing layer read-only.
 */
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { BlockNode } from '../node.js';
import type { ImageNode } from '../formats/format.js';
import { closeImage, openImage, resolveBackingPath } from '../open.js';
import { parseOptionString } from '../options.js';

/** Optional format hooks used by commit and rebase; formats that can do them implement them. */
export interface ChainHooks {
  /** Rewrite the header's backing file name and format (null removes the backing file). */
  setBackingFile?(name: string | null, format: string | null): Promise<void>;
  /** Deallocate every cluster so the image defers entirely to its backing file (qemu's make_empty). */
  makeEmpty?(): Promise<void>;
  /** A read-only view of an internal snapshot's disk content (qemu-img convert -l). */
  openSnapshot?(which: { id?: string; name?: string }): Promise<BlockNode>;
}

export type ChainImage = ImageNode & ChainHooks;

export interface ChainExtent {
  offset: number;
  length: number;
  /** Some layer above `base` defines the range. */
  allocated: boolean;
  /** The range is known to read as zeroes. */
  zero: boolean;
  /** Index of the layer that defines it (0 = top), or -1 when no layer above `base` does. */
  depth: number;
}

/** Status of `top`'s chain above `base` (null: the whole chain) for the longest uniform run at `offset`. */
export async function chainBlockStatus(
  top: BlockNode,
  offset: number,
  length: number,
  base: BlockNode | null = null,
  forCopy = false,
): Promise<ChainExtent> {
  let len = length;
  let depth = 0;
  for (let node: BlockNode | null = top; node !== null && node !== base; node = node.backing, depth++) {
    if (offset >= node.size()) return { offset, length: len, allocated: false, zero: true, depth: -1 };
    const n = Math.min(len, node.size() - offset);
    const st = await (forCopy && node.copyStatus ? node.copyStatus(offset, n) : node.blockStatus(offset, n));
    if (st.allocated) return { offset, length: st.length, allocated: true, zero: st.zero, depth };
    len = st.length;
  }
  // Unallocated down to base (content is base's) or down to the end of the chain (zeroes).
  return { offset, length: len, allocated: false, zero: base === null, depth: -1 };
}

/**
 * Opens the internal snapshot that qemu-img's -l parameter names:
 * "snapshot.id=ID,snapshot.name=NAME" (either part) or a bare ID-or-name.
 */
export async function loadSnapshot(img: ChainImage, param: string): Promise<BlockNode> {
  if (!img.openSnapshot) {
    throw new Error(
      `Failed to load snapshot: Block format '${img.driver}' used by device '' does not support temporarily loading internal snapshots`,
    );
  }
  if (!param.includes('=')) {
    // A bare parameter is an ID, or else a name (qemu-img tries them in that order).
    const byId = await img.openSnapshot({ id: param }).catch(() => null);
    return byId ?? img.openSnapshot({ name: param });
  }
  const opts = parseOptionString(param);
  for (const key of opts.keys()) {
    if (key !== 'snapshot.id' && key !== 'snapshot.name') throw new Error(`Invalid snapshot parameter '${key}'`);
  }
  return img.openSnapshot({ id: opts.get('snapshot.id'), name: opts.get('snapshot.name') });
}

/** The layers of a chain, top first. */
export function chainLayers(top: BlockNode): BlockNode[] {
  const layers: BlockNode[] = [];
  for (let n: BlockNode | null = top; n; n = n.backing) layers.push(n);
  return layers;
}

export interface OpenChainOptions {
  format?: string;
  /** Open the top image writable. */
  writableTop?: boolean;
  /** A backing layer to open writable (the commit base): by path, or 1 for the immediate backing file. */
  writableLayer?: string | 1;
  forceShare?: boolean;
}

/**
 * Opens `filename` and its backing chain one layer at a time. Returns the top image
 * and, if `writableLayer` was asked for, that layer (opened writable); it is an error
 * when `writableLayer` is not in the chain.
 */
export async function openChain(
  filename: string,
  opts: OpenChainOptions,
): Promise<{ top: ChainImage; writable: ChainImage | null }> {
  const byPath = typeof opts.writableLayer === 'string' ? await canonical(opts.writableLayer) : null;
  const top = (await openImage(filename, {
    format: opts.format,
    readOnly: !opts.writableTop,
    backing: false,
    forceShare: opts.forceShare && !opts.writableTop,
  })) as ChainImage;
  const seen = new Set([await canonical(filename)]);
  let writable: ChainImage | null = null;
  try {
    let layer: ChainImage = top;
    let layerPath = filename;
    for (let depth = 1; layer.backingFilename; depth++) {
      const backingPath = resolveBackingPath(layerPath, layer.backingFilename);
      const real = await canonical(backingPath);
      if (seen.has(real)) throw new Error(`Backing file chain of '${filename}' loops back to '${real}'`);
      seen.add(real);
      const isWritable = real === byPath || (opts.writableLayer === 1 && depth === 1);
      const next = (await openImage(backingPath, {
        format: layer.backingFormat ?? undefined,
        readOnly: !isWritable,
        backing: false,
        forceShare: opts.forceShare && !isWritable,
      }).catch((e: Error) => {
        throw new Error(`Could not open backing file: ${e.message}`);
      })) as ChainImage;
      layer.attachBacking(next);
      if (isWritable) writable = next;
      layer = next;
      layerPath = backingPath;
    }
    if (byPath !== null && writable === null) {
      throw new Error(`Did not find '${opts.writableLayer}' in the backing chain of '${filename}'`);
    }
    if (opts.writableLayer === 1 && writable === null) throw new Error('Image does not have a backing file');
  } catch (e) {
    await closeImage(top);
    throw e;
  }
  return { top, writable };
}

/**
 * Throws qemu-img's lock-conflict message when `target` is the same host file as
 * any layer of the given images' chains (writing it would destroy the source).
 */
export async function assertNotInChains(target: string, images: readonly BlockNode[], format: string): Promise<void> {
  const t = await stat(target).catch(() => null);
  if (!t) return;
  for (const img of images) {
    for (const layer of chainLayers(img)) {
      const s = await stat(layer.filename).catch(() => null);
      if (s && s.dev === t.dev && s.ino === t.ino) {
        throw new Error(
          `${target}: error while converting ${format}: Failed to get "write" lock\nIs another process using the image [${target}]?`,
        );
      }
    }
  }
}

async function canonical(p: string): Promise<string> {
  return realpath(p).catch(() => path.resolve(p));
}
