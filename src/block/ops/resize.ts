/**
 * `img resize`: set an image's virtual size, absolutely ("10G") or relative to
 * the current size ("+1G", "-512M"), through BlockNode.truncate. As in qemu-img,
 * a smaller size needs the explicit shrink permission (data past the new end is
 * lost), preallocation applies only to growth, and the result must stay positive.
 * The image is opened read-write with its backing chain (read-only below it).
 */
import type { Preallocation } from '../node.js';
import { closeImage, openImageReporting } from '../open.js';
import { parseSize } from '../options.js';

export interface ResizeArgs {
  filename: string;
  /** "[+|-]SIZE" with qemu's size suffixes. */
  size: string;
  format?: string;
  preallocation?: string;
  shrink?: boolean;
}

/** Shrinking was not allowed; `warning` explains what shrinking would do. */
export class ShrinkNotAllowedError extends Error {
  readonly warning =
    "Shrinking an image will delete all data beyond the shrunken image's end. Before performing such an " +
    'operation, make sure there is no important data there.';

  constructor() {
    super('Use the --shrink option to perform a shrink operation.');
    this.name = 'ShrinkNotAllowedError';
  }
}

const PREALLOCATION_MODES: readonly Preallocation[] = ['off', 'metadata', 'falloc', 'full'];

/** The new size asked for by a "[+|-]SIZE" argument, for an image of `current` bytes. */
export function resizeTarget(text: string, current: number): number {
  const sign = text.startsWith('+') ? 1 : text.startsWith('-') ? -1 : 0;
  let n: number;
  try {
    n = parseSize(sign === 0 ? text : text.slice(1), 'size');
  } catch {
    throw new Error(
      "Parameter 'size' expects a non-negative number below 2^64\n" +
        'Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.',
    );
  }
  return sign === 0 ? n : current + sign * n;
}

export async function resizeImage(a: ResizeArgs): Promise<void> {
  const prealloc = (a.preallocation ?? 'off') as Preallocation;
  if (!PREALLOCATION_MODES.includes(prealloc)) throw new Error(`Invalid preallocation mode '${a.preallocation}'`);
  resizeTarget(a.size, 0);
  const image = await openImageReporting(a.filename, { format: a.format, readOnly: false });
  try {
    const current = image.size();
    const target = resizeTarget(a.size, current);
    if (target <= 0) throw new Error('New image size must be positive');
    if (target <= current && prealloc !== 'off') throw new Error('Preallocation can only be used for growing images');
    if (target < current && !a.shrink) throw new ShrinkNotAllowedError();
    await image.truncate(target, { preallocation: prealloc, shrink: a.shrink });
    await image.flush();
  } finally {
    await closeImage(image);
  }
}
