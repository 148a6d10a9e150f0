/**
 * `img check`: the format-generic entry point. Opens the image file (read-write
 * only when repairing), finds the format (given, or probed), and runs that
 * format's consistency check (FormatDriver.check: qcow2, vdi, vmdk). A format
 * without one answers "This image format does not support checks" with exit
 * code 63, as qemu-img 7.2; a check that cannot complete on a format other than
 * qcow2 is qemu-img's "Check failed: <reason>" (exit 1).
 *
 * A repair that fixed anything is followed by a second, read-only pass (qemu-img's
 * "Double checking the fixed image now..."), whose result is reported with the
 * fixed counts of the first. The result is qemu-img's ImageCheck (QAPI keys; a
 * count of 0 is left out), and the exit code follows qemu-img: 0 clean,
 * 1 the check could not complete, 2 corruptions, 3 leaks only.
 */
import { openProtocol } from '../protocols/index.js';
import type { ProtocolNode } from '../protocols/protocol.js';
import { getFormat, probeFormat } from '../formats/index.js';
import { ImageFormatError } from '../node.js';
import { readQcow2Header } from '../formats/qcow2/header.js';
import { assertOptionsTaken, closeImage, imageSpec, openImage, resolveBackingPath } from '../open.js';
import type { JsonImageSpec } from '../json-filename.js';
import type { CheckCounts, RepairMode } from '../formats/qcow2/check.js';
import { toQemuJson } from '../../cli/format-output.js';

export interface CheckImageArgs {
  filename: string;
  format?: string;
  /** -r leaks | -r all */
  repair?: 'leaks' | 'all';
  forceShare?: boolean;
  /** Receives each finding line (qemu-img prints them on stderr). */
  log: (line: string) => void;
}

/** qemu-img's ImageCheck. */
export interface ImageCheck {
  filename: string;
  format: string;
  'check-errors': number;
  'image-end-offset'?: number;
  corruptions?: number;
  leaks?: number;
  'corruptions-fixed'?: number;
  'leaks-fixed'?: number;
  'total-clusters'?: number;
  'allocated-clusters'?: number;
  'fragmented-clusters'?: number;
  'compressed-clusters'?: number;
}

export interface CheckOutcome {
  check: ImageCheck;
  /** The "found and repaired" paragraph when a repair fixed something (human output only). */
  repairSummary: string | null;
  exitCode: number;
}

/** Thrown for a format without a check (qemu-img exits 63). */
export class CheckNotSupportedError extends Error {
  readonly exitCode = 63;
  constructor() {
    super('This image format does not support checks');
  }
}

function toImageCheck(filename: string, format: string, c: CheckCounts): ImageCheck {
  const opt = (n: number) => (n !== 0 ? n : undefined);
  return {
    filename,
    format,
    'check-errors': c.checkErrors,
    'image-end-offset': opt(c.imageEndOffset),
    corruptions: opt(c.corruptions),
    leaks: opt(c.leaks),
    'corruptions-fixed': opt(c.corruptionsFixed),
    'leaks-fixed': opt(c.leaksFixed),
    'total-clusters': opt(c.totalClusters),
    'allocated-clusters': opt(c.allocatedClusters),
    'fragmented-clusters': opt(c.fragmentedClusters),
    'compressed-clusters': opt(c.compressedClusters),
  };
}

/** An image file opened for a whole-image metadata operation, with its format name. */
export interface OpenedImageFile {
  file: ProtocolNode;
  format: string;
}

/**
 * Opens the image file itself (no format driver on top) for check, snapshot and
 * amend, and names its format: the given one, or the probed one. Errors read
 * like qemu-img's ("Could not open 'x': …"). Formats with metadata take QEMU's
 * narrower locks once the format is known.
 */
export async function openImageFile(
  filename: string,
  opts: { format?: string; readOnly: boolean; forceShare?: boolean },
): Promise<OpenedImageFile> {
  const couldNotOpen = (e: Error) => new Error(`Could not open '${filename}': ${e.message}`);
  let spec: JsonImageSpec;
  try {
    spec = imageSpec(filename, opts.format);
  } catch (e) {
    throw couldNotOpen(e as Error);
  }
  const file = await openProtocol(spec.protocolName, { readOnly: opts.readOnly, forceShare: opts.forceShare }).catch((e: Error) => {
    throw couldNotOpen(e);
  });
  try {
    let format = spec.format;
    if (format === undefined) {
      const head = new Uint8Array(Math.min(4096, file.size()));
      await file.read(0, head);
      format = probeFormat(head, spec.location).name;
    }
    try {
      assertOptionsTaken(spec, format);
    } catch (e) {
      throw couldNotOpen(e as Error);
    }
    if (format !== 'raw') {
      try {
        file.lockForFormat(true);
      } catch (e) {
        throw couldNotOpen(e as Error);
      }
    }
    if (format === 'qcow2' && spec.backing) await assertBackingChainOpens(file, filename, spec.location);
    return { file, format };
  } catch (e) {
    await file.close();
    throw e;
  }
}

/**
 * qemu-img opens the backing chain for check, snapshot and amend too, and fails
 * when it cannot (missing file, a chain that loops). A header too damaged to
 * name a backing file is left to the operation to report.
 */
async function assertBackingChainOpens(file: ProtocolNode, filename: string, location: string): Promise<void> {
  const header = await readQcow2Header(file).catch(() => null);
  if (!header?.backingFilename) return;
  const backing = await openImage(resolveBackingPath(location, header.backingFilename), {
    format: header.backingFormat ?? undefined,
    readOnly: true,
    forceShare: true,
  }).catch((e: Error) => {
    throw new Error(`Could not open '${filename}': Could not open backing file: ${e.message}`);
  });
  await closeImage(backing);
}

export async function checkImage(a: CheckImageArgs): Promise<CheckOutcome> {
  const repairing = a.repair !== undefined;
  const { file, format } = await openImageFile(a.filename, { format: a.format, readOnly: !repairing, forceShare: a.forceShare });
  try {
    const driver = getFormat(format);
    if (!driver.check) throw new CheckNotSupportedError();
    const check = driver.check;
    const fix: RepairMode = { leaks: repairing, errors: a.repair === 'all' };
    let counts = await check(file, { fix, log: a.log }).catch((e: Error) => {
      if (e instanceof ImageFormatError || format === 'qcow2') throw e;
      throw new Error(`Check failed: ${e.message}`);
    });
    let repairSummary: string | null = null;
    if (counts.corruptionsFixed || counts.leaksFixed) {
      repairSummary =
        'The following inconsistencies were found and repaired:\n\n' +
        `    ${counts.leaksFixed} leaked clusters\n` +
        `    ${counts.corruptionsFixed} corruptions\n\n` +
        'Double checking the fixed image now...\n';
      const second = await check(file, { log: a.log });
      counts = { ...second, leaksFixed: counts.leaksFixed, corruptionsFixed: counts.corruptionsFixed };
    }
    const exitCode = counts.checkErrors ? 1 : counts.corruptions ? 2 : counts.leaks ? 3 : 0;
    return { check: toImageCheck(a.filename, format, counts), repairSummary, exitCode };
  } finally {
    await file.close();
  }
}

/** qemu-img's human report of an ImageCheck. */
export function formatCheckHuman(c: ImageCheck): string {
  let out = '';
  const corruptions = c.corruptions ?? 0;
  const leaks = c.leaks ?? 0;
  if (!corruptions && !leaks && !c['check-errors']) {
    out += 'No errors were found on the image.\n';
  } else {
    if (corruptions) {
      out += `\n${corruptions} errors were found on the image.\n` +
        'Data may be corrupted, or further writes to the image may corrupt it.\n';
    }
    if (leaks) {
      out += `\n${leaks} leaked clusters were found on the image.\n` +
        'This means waste of disk space, but no harm to data.\n';
    }
    if (c['check-errors']) out += `\n${c['check-errors']} internal errors have occurred during the check.\n`;
  }
  const total = c['total-clusters'] ?? 0;
  const allocated = c['allocated-clusters'] ?? 0;
  if (total && allocated) {
    const pct = (n: number, of: number) => printfFixed2((n * 100) / of);
    out += `${allocated}/${total} = ${pct(allocated, total)}% allocated, ` +
      `${pct(c['fragmented-clusters'] ?? 0, allocated)}% fragmented, ` +
      `${pct(c['compressed-clusters'] ?? 0, allocated)}% compressed clusters\n`;
  }
  if (c['image-end-offset']) out += `Image end offset: ${c['image-end-offset']}\n`;
  return out;
}

/** C's "%0.2f": like toFixed(2) except that exact ties round to even. */
function printfFixed2(x: number): string {
  const thousandths = x * 1000;
  if (Number.isInteger(thousandths) && thousandths % 10 === 5) {
    const hundredths = (thousandths - 5) / 10;
    return ((hundredths % 2 === 0 ? hundredths : hundredths + 1) / 100).toFixed(2);
  }
  return x.toFixed(2);
}

export function formatCheckJson(c: ImageCheck): string {
  return `${toQemuJson(c)}\n`;
}
