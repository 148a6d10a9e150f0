/**
 * `img amend`: changes format options of an existing image, format generically.
 * The image file is opened read-write (exclusive locks) and handed to the
 * format's amend; only qcow2 has one, others answer "Format driver 'raw' does
 * not support option amendment" as qemu-img does. A size change is applied
 * afterwards through img resize's path (the format driver's truncate; shrinking
 * allowed, as amend allows it). `-o help` lists the amendable options.
 */
import { openImageFile } from './check.js';
import { resizeImage } from './resize.js';
import { mergeOptionStrings } from '../options.js';
import { QCOW2_AMEND_OPTIONS, amendQcow2 } from '../formats/qcow2/amend.js';
import { ProgressBar } from '../../cli/progress.js';
import { optionHelpLine } from './create.js';

export interface AmendImageArgs {
  filename: string;
  format?: string;
  /** Raw `-o` arguments, in order. */
  options: readonly string[];
  progress?: boolean;
}

/** qemu-img's "Amend options for 'qcow2':" help text. */
export function amendHelp(format: string): string {
  if (format !== 'qcow2') return `Format driver '${format}' does not support option amendment\n`;
  const lines = QCOW2_AMEND_OPTIONS.map(optionHelpLine);
  return `Amend options for '${format}':\n${lines.join('\n')}\n`;
}

/** Amends the image; returns help text instead when `-o help` was asked for. */
export async function amendImage(a: AmendImageArgs): Promise<string> {
  if (a.options.length === 0) throw new Error('Must specify options (-o)');
  const options = mergeOptionStrings(a.options);
  const wantsHelp = options.has('help') || options.has('?');
  const { file, format } = await openImageFile(a.filename, { format: a.format, readOnly: wantsHelp });
  let newSize: number | null;
  try {
    if (wantsHelp) return amendHelp(format);
    if (format !== 'qcow2') throw new Error(`Format driver '${format}' does not support option amendment`);
    const bar = new ProgressBar(a.progress ?? false);
    newSize = await amendQcow2(file, options);
    bar.update(1, 1);
    bar.end();
  } finally {
    await file.close();
  }
  if (newSize !== null) await resizeImage({ filename: a.filename, format, size: String(newSize), shrink: true });
  return '';
}
