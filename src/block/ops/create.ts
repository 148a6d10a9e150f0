/**
 * `img create`: turns qemu-img's arguments into a format driver's CreateRequest.
 * -b/-F become the backing_file/backing_fmt options; without SIZE an overlay takes
 * its backing file's size (which needs the backing file to open, unless -u).
 */
import { getFormat } from '../formats/index.js';
import { mergeOptionStrings, parseSize } from '../options.js';
import { closeImage, openImage, resolveBackingPath } from '../open.js';

export interface CreateImageArgs {
  filename: string;
  format: string;
  size?: string;
  backingFile?: string;
  backingFormat?: string;
  unsafe?: boolean;
  /** Raw `-o` arguments, in order. */
  options: readonly string[];
}

/** Creates the image and returns qemu-img's "Formatting …" line. */
export async function createImage(a: CreateImageArgs): Promise<string> {
  const driver = getFormat(a.format);
  const options = mergeOptionStrings(a.options);
  if (a.backingFile !== undefined) options.set('backing_file', a.backingFile);
  if (a.backingFormat !== undefined) options.set('backing_fmt', a.backingFormat);
  const sizeText = a.size ?? options.get('size');
  options.delete('size');

  let size: number | undefined = sizeText !== undefined ? parseSize(sizeText, 'image size') : undefined;
  const backing = options.get('backing_file');
  if (backing !== undefined && !a.unsafe) {
    const backingPath = resolveBackingPath(a.filename, backing);
    const img = await openImage(backingPath, {
      format: options.get('backing_fmt'),
      readOnly: true,
      forceShare: true,
    }).catch((e: Error) => {
      throw new Error(`Could not open backing image '${backing}': ${e.message}`);
    });
    try {
      if (!options.has('backing_fmt')) options.set('backing_fmt', img.driver);
      size ??= img.size();
    } finally {
      await closeImage(img);
    }
  }
  if (size === undefined) throw new Error('Image creation needs a size parameter');

  await driver.create({ filename: a.filename, size, options });
  const shown = [...options].map(([k, v]) => `${k}=${v}`);
  return `Formatting '${a.filename}', fmt=${driver.name} ${[...shown, `size=${size}`].join(' ')}`;
}
