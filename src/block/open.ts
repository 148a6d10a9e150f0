/**
 * Opening an image and its backing chain. The protocol node (file) is opened
 * first, the format is probed from its first bytes unless given, the format
 * driver opens the image, and then the backing file it names is opened the same
 * way, read-only, with relative names resolved against the folder of the image
 * that names them (for a URL, against the URL's folder). A chain that comes back
 * to a file already in it is an error.
 *
 * A `json:{…}` name (QEMU's pseudo-filename, json-filename.ts) gives the format,
 * the protocol and its options in one string; it opens the same way, through the
 * same protocol table, and `"backing": null` in it skips the backing chain.
 */
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { openProtocol } from './protocols/index.js';
import type { InlineCachedReads } from './protocols/protocol.js';
import { isJsonFilename } from './json-options.js';
import { type JsonImageSpec, splitJsonFilename } from './json-filename.js';
import { getFormat, probeFormat } from './formats/index.js';
import type { ImageNode } from './formats/format.js';

export interface OpenImageOptions {
  /** Format name; probed when absent. */
  format?: string;
  readOnly?: boolean;
  /** Open the backing chain (default true; `-u` style operations pass false). */
  backing?: boolean;
  /** -U/--force-share: open read-only without taking write locks or checking others'. */
  forceShare?: boolean;
  /** Open an image marked corrupt, for repair. */
  forRepair?: boolean;
  /** cache=unsafe: the image's flushes do not reach stable storage (not passed to backing files). */
  noFlush?: boolean;
  /** The protocol option of that name, for the image and its backing chain (protocols/protocol.ts). */
  inlineCachedReads?: InlineCachedReads;
}

const PROBE_BYTES = 4096;

export async function openImage(filename: string, opts: OpenImageOptions = {}): Promise<ImageNode> {
  return openInChain(filename, opts, new Set());
}

/** What an image name says: a plain name as it is, a json: name split (json-filename.ts). */
export function imageSpec(filename: string, format?: string): JsonImageSpec {
  if (!isJsonFilename(filename)) return { format, protocolName: filename, location: filename, backing: true, unknown: [], protocolOnly: false };
  const json = splitJsonFilename(filename);
  if (json.format && format && json.format !== format) {
    throw new Error(`Cannot use image format '${format}': the json: name says '${json.format}'`);
  }
  return { ...json, format: format ?? json.format };
}

/** openImage for a command: a failure reads as qemu-img's "Could not open 'NAME': reason". */
export async function openImageReporting(filename: string, opts: OpenImageOptions = {}): Promise<ImageNode> {
  return openImage(filename, opts).catch((e: Error) => {
    throw new Error(`Could not open '${filename}': ${e.message}`);
  });
}

async function openInChain(filename: string, opts: OpenImageOptions, seen: Set<string>): Promise<ImageNode> {
  const readOnly = opts.readOnly ?? false;
  const spec = imageSpec(filename, opts.format);
  const location = spec.location;
  const real = hasScheme(location) ? location : await realpath(location).catch(() => path.resolve(location));
  if (seen.has(real)) {
    throw new Error(`Backing file chain of '${filename}' loops back to '${real}'`);
  }
  seen.add(real);

  const file = await openProtocol(spec.protocolName, {
    readOnly,
    forceShare: opts.forceShare,
    noFlush: opts.noFlush,
    inlineCachedReads: opts.inlineCachedReads,
  });
  let image: ImageNode;
  try {
    const header = new Uint8Array(Math.min(PROBE_BYTES, file.size()));
    await file.read(0, header);
    const driver = spec.format ? getFormat(spec.format) : probeFormat(header, location);
    assertOptionsTaken(spec, driver.name);
    image = await driver.open(file, { readOnly, forRepair: opts.forRepair });
  } catch (e) {
    await file.close();
    throw e;
  }

  try {
    if ((opts.backing ?? true) && spec.backing && image.backingFilename) {
      const backingPath = resolveBackingPath(location, image.backingFilename);
      const backing = await openInChain(
        backingPath,
        {
          format: image.backingFormat ?? undefined,
          readOnly: true,
          backing: true,
          forceShare: opts.forceShare,
          inlineCachedReads: opts.inlineCachedReads,
        },
        seen,
      ).catch((e: Error) => {
        throw new Error(`Could not open backing file: ${e.message}`);
      });
      image.attachBacking(backing);
    }
  } catch (e) {
    await image.close();
    throw e;
  }
  return image;
}

/** A json: name's options that neither the protocol nor the format `format` took are an error. */
export function assertOptionsTaken(spec: JsonImageSpec, format: string): void {
  if (spec.unknown.length) throw new Error(`Block format '${format}' does not support the option '${spec.unknown[0]}'`);
}

/** A backing name relative to the image's folder, as QEMU resolves it. */
export function resolveBackingPath(imageFilename: string, backingName: string): string {
  if (path.isAbsolute(backingName) || /^[a-z][a-z0-9+.-]*:/i.test(backingName)) return backingName;
  // A URL's folder is everything up to its last slash (QEMU's path_combine).
  if (hasScheme(imageFilename)) return imageFilename.slice(0, imageFilename.lastIndexOf('/') + 1) + backingName;
  return path.join(path.dirname(imageFilename), backingName);
}

function hasScheme(name: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(name);
}

/** Closes an image and its whole backing chain. */
export async function closeImage(image: ImageNode): Promise<void> {
  const chain: ImageNode[] = [];
  for (let n: ImageNode | null = image; n; n = n.backing as ImageNode | null) chain.push(n);
  for (const n of chain) await n.close();
}
