/**
 * `img measure`: how large a new image of the output format would be, either for
 * an empty image of --size bytes or for a copy of an existing image (its whole
 * backing chain, as `img convert` would copy it).
 *
 * The output format's measure hook does the counting (FormatDriver.measure). raw
 * needs none: its image is the disk byte for byte, so both numbers are the virtual
 * size rounded up to 512-byte sectors. Other formats without a hook are refused
 * with qemu-img's "does not support size measurement". The source is described to the hook
 * as runs of data / no data through its chain, and by the persistent bitmaps its
 * format reports (qcow2 v3 images can carry them; other formats cannot). `-o`
 * options are checked like img create's, with qemu-img's "Invalid options for
 * file format" message. -l measures a copy of an internal snapshot (the format's
 * openSnapshot hook, chain.ts).
 */
import type { BlockNode } from '../node.js';
import { getFormat } from '../formats/index.js';
import type { ImageNode, MeasureBitmap, MeasureExtent, MeasureRequest, MeasureResult } from '../formats/format.js';
import { closeImage, openImageReporting } from '../open.js';
import { mergeOptionStrings } from '../options.js';
import { chainBlockStatus, loadSnapshot } from './chain.js';
import { creationOptions, parseImageSize, validateCreateOptions } from './create.js';
import { type OutputFormat, toQemuJson } from '../../cli/format-output.js';

export interface MeasureArgs {
  /** The image to copy (exclusive with size). */
  filename?: string;
  /** --size, with suffixes. */
  size?: string;
  /** The source's format (probed when absent). */
  format?: string;
  /** -O, default raw. */
  outputFormat?: string;
  /** Raw `-o` arguments, in order. */
  options: readonly string[];
  /** -l: measure an internal snapshot of the source. */
  snapshot?: string;
  forceShare?: boolean;
}

const SECTOR = 512;
const STATUS_STEP = 2 ** 30;

export async function measureImage(a: MeasureArgs): Promise<MeasureResult> {
  if (a.filename !== undefined && a.size !== undefined) {
    throw new Error('--size N cannot be used together with a filename.');
  }
  if (a.filename === undefined && a.size === undefined) {
    throw new Error('Either --size N or one filename must be specified.');
  }
  if (a.snapshot !== undefined && a.size !== undefined) throw new Error('--size N cannot be used together with -l.');
  const size = a.size !== undefined ? parseImageSize(a.size) : undefined;
  const driver = getFormat(a.outputFormat ?? 'raw');
  const options = mergeOptionStrings(a.options);
  try {
    validateCreateOptions(options, creationOptions(driver));
  } catch (e) {
    throw new Error(`${(e as Error).message}\nInvalid options for file format '${driver.name}'`);
  }
  options.delete('size');

  let source: ImageNode | null = null;
  if (a.filename !== undefined) {
    const name = a.filename;
    source = await openImageReporting(name, { format: a.format, readOnly: true, forceShare: a.forceShare });
  }
  try {
    // -l measures the snapshot's content; the bitmaps are still the image's.
    const content = source && a.snapshot !== undefined ? await loadSnapshot(source, a.snapshot) : source;
    const virtualSize = Math.ceil((content ? content.size() : size!) / SECTOR) * SECTOR;
    const req: MeasureRequest = {
      options,
      size: virtualSize,
      source: source ? measureSource(source, content!) : null,
    };
    const measure = driver.measure ?? (driver.name === 'raw' ? measureByteForByte : undefined);
    if (!measure) throw new Error(`Block driver '${driver.name}' does not support size measurement`);
    return await measure(req);
  } finally {
    if (source) await closeImage(source);
  }
}

/** raw: the image is the disk byte for byte, so both sizes are the virtual size. */
async function measureByteForByte(req: MeasureRequest): Promise<MeasureResult> {
  return { required: req.size, fullyAllocated: req.size };
}

/**
 * An opened image (with its chain) as the source a measure hook sizes a copy of;
 * `content` is what is copied (the image itself, or a view of one of its snapshots).
 */
export function measureSource(image: ImageNode, content: BlockNode = image): NonNullable<MeasureRequest['source']> {
  return { extents: () => sourceExtents(content), bitmaps: persistentBitmaps(image) };
}

/** The source's data runs through its whole chain; the last run ends at the sector-rounded size. */
async function* sourceExtents(image: BlockNode): AsyncGenerator<MeasureExtent> {
  const size = image.size();
  for (let offset = 0; offset < size; ) {
    const st = await chainBlockStatus(image, offset, Math.min(size - offset, STATUS_STEP));
    const end = offset + st.length;
    yield { offset, length: (end === size ? Math.ceil(end / SECTOR) * SECTOR : end) - offset, data: st.allocated && !st.zero };
    offset = end;
  }
}

/** Persistent bitmaps as the image's format-specific info lists them; null when its format cannot hold any. */
function persistentBitmaps(image: ImageNode): MeasureBitmap[] | null {
  const spec = image.formatSpecific?.();
  if (spec?.type !== 'qcow2' || spec.data.compat !== '1.1') return null;
  const list = (spec.data.bitmaps ?? []) as { name: string; granularity: number }[];
  return list.map((b) => ({ name: b.name, granularity: b.granularity }));
}

/** qemu-img measure's output. */
export function formatMeasure(r: MeasureResult, output: OutputFormat): string {
  if (output === 'json') {
    return `${toQemuJson({ required: r.required, 'fully-allocated': r.fullyAllocated, bitmaps: r.bitmaps })}\n`;
  }
  let out = `required size: ${r.required}\nfully allocated size: ${r.fullyAllocated}\n`;
  if (r.bitmaps !== undefined) out += `bitmaps size: ${r.bitmaps}\n`;
  return out;
}
