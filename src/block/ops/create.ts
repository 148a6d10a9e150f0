/**
 * `img create`: turns qemu-img's arguments into a format driver's CreateRequest,
 * and the creation-option list behind `-o help` and the "Formatting …" line.
 *
 * The options an image accepts are its format's (FormatDriver.createOptions, in
 * the format's declaration order) followed by those of the `file` protocol under it
 * that the format does not declare itself — qemu-img's merged list when a target
 * file name is known. `-o help` prints that list sorted by name (only the format's
 * part without a file name, with qemu-img's hint about protocol options). The
 * "Formatting" line walks the same list in declaration order and prints every
 * option that was given or has a default: strings with commas doubled, sizes and
 * numbers as plain integers, anything else as written.
 *
 * Checks follow qemu-img's order: the option names and typed values, a size given
 * twice, -F without -b, formats without backing files, the backing file (opened to
 * check it and to take its size when SIZE is omitted; -u skips that but then needs
 * -F), a missing size. Errors here are raised before anything is printed; the
 * driver's own validation runs in create() after the Formatting line, as in
 * qemu-img. The file protocol's nocow and extent_size_hint only tune host
 * allocation: they are accepted and not passed to formats that do not declare them.
 */
import { getFormat } from '../formats/index.js';
import type { CreateOptionSpec, FormatDriver } from '../formats/format.js';
import { mergeOptionStrings, parseBool, parseOptionString, parseSize } from '../options.js';
import { closeImage, openImage, resolveBackingPath } from '../open.js';

/** The `file` protocol's creation options, in QEMU's order. */
export const FILE_PROTOCOL_CREATE_OPTIONS: readonly CreateOptionSpec[] = [
  { name: 'size', type: 'size', help: 'Virtual disk size' },
  { name: 'nocow', type: 'bool', help: 'Turn off copy-on-write (valid only on btrfs)' },
  { name: 'preallocation', type: 'str', help: 'Preallocation mode (allowed values: off, falloc, full)' },
  { name: 'extent_size_hint', type: 'size', help: 'Extent size hint for the image file, 0 to disable' },
];

/** The options a new image of `driver` accepts: the format's, then the protocol's (with a file name). */
export function creationOptions(driver: FormatDriver, withProtocol = true): CreateOptionSpec[] {
  const list = [...driver.createOptions];
  if (withProtocol) {
    for (const o of FILE_PROTOCOL_CREATE_OPTIONS) if (!list.some((f) => f.name === o.name)) list.push(o);
  }
  return list;
}

const TYPE_TEXT: Record<CreateOptionSpec['type'], string> = {
  str: '<str>', size: '<size>', bool: '<bool (on/off)>', num: '<num>',
};

/** One option as qemu-img's `-o help` lists it ("  name=<type>" padded, " - ", help). */
export function optionHelpLine(o: CreateOptionSpec): string {
  return `${`  ${o.name}=${TYPE_TEXT[o.type]}`.padEnd(24)} - ${o.help}`;
}

/** `-o help`: with a target file name the merged list, without it the format's own. */
export function createOptionsHelp(format: string, filename?: string): string {
  const driver = getFormat(format);
  const lines = creationOptions(driver, filename !== undefined)
    .map(optionHelpLine)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (filename !== undefined) return `Supported options:\n${lines.join('\n')}\n`;
  return (
    `Supported ${driver.name} options:\n${lines.join('\n')}\n\n` +
    'The protocol level may support further options.\nSpecify the target filename to include those options.\n'
  );
}

/** True when some `-o` argument asks for help ("help" or "?" as an option). */
export function isOptionsHelp(options: readonly string[]): boolean {
  return options.some((text) => {
    const keys = [...parseOptionString(text).keys()];
    return keys.includes('help') || keys.includes('?');
  });
}

/** Checks option names and typed values against `list`, with qemu-img's messages. */
export function validateCreateOptions(options: Map<string, string>, list: readonly CreateOptionSpec[]): void {
  const invalid = (why: string) => new Error(why);
  for (const [key, value] of options) {
    const spec = list.find((o) => o.name === key);
    if (!spec) throw invalid(`Invalid parameter '${key}'`);
    if (spec.type === 'bool') {
      try {
        parseBool(value, key);
      } catch (e) {
        throw invalid((e as Error).message);
      }
    } else if (spec.type === 'size') {
      sizeValue(value, key, invalid);
    } else if (spec.type === 'num' && !/^(0x[0-9a-f]+|[0-9]+)$/i.test(value)) {
      throw invalid(`Parameter '${key}' expects a number`);
    }
  }
}

function sizeValue(value: string, key: string, invalid: (why: string) => Error): number {
  try {
    return parseSize(value, key);
  } catch {
    throw invalid(
      `Parameter '${key}' expects a non-negative number below 2^64\n` +
        'Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.',
    );
  }
}

/** A SIZE argument, with qemu-img's message when it is not one. */
export function parseImageSize(text: string): number {
  try {
    return parseSize(text, 'image size');
  } catch {
    throw new Error(
      'Invalid image size specified. You may use k, M, G, T, P or E suffixes for\n' +
        'kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.',
    );
  }
}

/** qemu-img's "Formatting '…', fmt=… key=value …" line. */
export function formattingLine(filename: string, driver: FormatDriver, options: Map<string, string>, size: number): string {
  const all = new Map(options).set('size', String(size));
  const parts: string[] = [];
  for (const o of creationOptions(driver)) {
    const given = all.get(o.name);
    const value = given ?? o.default;
    if (value === undefined) continue;
    if (o.type === 'str') parts.push(`${o.name}=${value.replace(/,/g, ',,')}`);
    else if (given !== undefined && (o.type === 'size' || o.type === 'num')) {
      parts.push(`${o.name}=${o.type === 'size' ? parseSize(given, o.name) : Number(given)}`);
    } else parts.push(`${o.name}=${value}`);
  }
  return `Formatting '${filename}', fmt=${driver.name} ${parts.join(' ')}`;
}

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

/** A checked creation: the line to print, and the step that writes the image. */
export interface PreparedCreate {
  formatting: string;
  create(): Promise<void>;
}

/** A failed creation: "FILENAME: detail", as qemu-img create words it; convert words it its own way. */
export class CreateError extends Error {
  constructor(filename: string, readonly detail: string) {
    super(`${filename}: ${detail}`);
  }
}

/** Checks everything qemu-img checks before printing the Formatting line. */
export async function prepareCreate(a: CreateImageArgs): Promise<PreparedCreate> {
  const fail = (message: string) => new CreateError(a.filename, message);
  const size = a.size !== undefined ? parseImageSize(a.size) : undefined;
  let driver: FormatDriver;
  try {
    driver = getFormat(a.format);
  } catch (e) {
    throw fail((e as Error).message);
  }
  const options = mergeOptionStrings(a.options);
  try {
    validateCreateOptions(options, creationOptions(driver));
  } catch (e) {
    throw fail((e as Error).message);
  }
  if (a.backingFile !== undefined) options.set('backing_file', a.backingFile);
  if (a.backingFormat !== undefined) options.set('backing_fmt', a.backingFormat);
  let virtualSize = size;
  if (options.has('size')) {
    if (size !== undefined) throw fail('The image size must be specified only once');
    virtualSize = parseSize(options.get('size')!, 'size');
    options.delete('size');
  }
  const backing = options.get('backing_file');
  if (backing !== undefined && !driver.createOptions.some((o) => o.name === 'backing_file')) {
    throw fail(`Backing file not supported for file format '${driver.name}'`);
  }
  if (backing !== undefined && !a.unsafe) {
    const img = await openImage(resolveBackingPath(a.filename, backing), {
      format: options.get('backing_fmt'),
      readOnly: true,
      backing: false,
      forceShare: true,
    }).catch((e: Error) => {
      throw fail(`${e.message}\nCould not open backing image.`);
    });
    try {
      if (!options.has('backing_fmt')) {
        throw fail(`Backing file specified without backing format\nDetected format of ${img.driver}.`);
      }
      virtualSize ??= img.size();
    } finally {
      await closeImage(img);
    }
  } else if (backing !== undefined && !options.has('backing_fmt')) {
    throw fail('Backing file specified without backing format');
  }
  if (virtualSize === undefined) throw fail('Image creation needs a size parameter');

  const formatting = formattingLine(a.filename, driver, options, virtualSize);
  // Protocol options the format does not declare go to the file below it (raw's preallocation).
  const protocolPreallocation = driver.createOptions.some((f) => f.name === 'preallocation')
    ? undefined
    : options.get('preallocation');
  for (const o of FILE_PROTOCOL_CREATE_OPTIONS) {
    if (!driver.createOptions.some((f) => f.name === o.name)) options.delete(o.name);
  }
  // The printed size is the one asked for; images are made whole 512-byte sectors long, as QEMU does.
  const finalSize = Math.ceil(virtualSize / 512) * 512;
  return {
    formatting,
    create: async () => {
      if (options.has('backing_fmt') && !options.has('backing_file')) {
        throw fail('Backing format cannot be used without backing file');
      }
      await driver
        .create({ filename: a.filename, size: finalSize, options, protocolPreallocation }).catch((e: Error) => {
        throw fail(e.message);
      });
    },
  };
}

/** Creates the image and returns qemu-img's "Formatting …" line. */
export async function createImage(a: CreateImageArgs): Promise<string> {
  const prepared = await prepareCreate(a);
  await prepared.create();
  return prepared.formatting;
}
