/**
 * `img convert`: copies one or more source images, concatenated, into a target
 * image of any format, the way qemu-img convert does.
 *
 * Steps: open every source (read-only, with its backing chain), create the target
 * with the sum of their sizes (unless -n: then open the existing one, which must
 * be large enough), open it, copy with the copy engine, flush, close. Without -B
 * the target is standalone: data the sources' backing chains provide is copied,
 * and what no layer allocates reads as zeroes. With -c the compression workers are
 * started first, so their start-up overlaps opening the images. With -B the target is an overlay
 * of the given backing file and only what each source's top layer allocates is
 * copied (the backing is assumed to hold the rest, as in qemu-img).
 *
 * A target this function creates is written under a hidden name in the same
 * folder (".NAME.tsemu-partial-PID", so relative backing names resolve the same)
 * and renamed to its real name only after the last write: a failed or killed run
 * never leaves a complete-looking image behind, and a failed one removes its
 * partial file. An existing file of the target's name is replaced in place, as
 * qemu-img does (its locks then protect an image in use). A -n target is left as
 * it is on failure (its content is then undefined, as with qemu-img).
 *
 * `-O ova` writes the disk as a streamOptimized VMDK under a hidden name first
 * (the usual path above), then packs it with its OVF descriptor and manifest
 * into the OVA, itself written under a hidden name and renamed when complete
 * (formats/ova/writer.ts); the hidden VMDK is removed either way.
 *
 * `-o uuid=keep` is resolved here, before the target is created: it becomes the
 * (single) source image's disk UUID, so the target format only ever sees a UUID.
 */
import { lstat, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { BlockNode } from '../node.js';
import type { ImageNode } from '../formats/format.js';
import { getFormat } from '../formats/index.js';
import { findProtocol } from '../protocols/index.js';
import type { InlineCachedReads } from '../protocols/protocol.js';
import { closeImage, openImageReporting } from '../open.js';
import { CreateError, createImage } from './create.js';
import { copySegments, type CopySegment } from './copy-engine.js';
import type { CacheMode } from './copy-args.js';
import { assertNotInChains, loadSnapshot } from './chain.js';
import { type CompressionType, warmCompression } from '../compress/index.js';
import { mergeOptionStrings } from '../options.js';

export interface ConvertArgs {
  sources: readonly string[];
  target: string;
  /** -f: format of every source (probed when absent). */
  sourceFormat?: string;
  /** -O: target format (default raw). */
  outputFormat?: string;
  /** -o arguments, in order. */
  options?: readonly string[];
  /** -B / -F */
  backingFile?: string;
  backingFormat?: string;
  /** -l: internal snapshot of the (single) source to convert. */
  snapshot?: string;
  compress?: boolean;
  /** -n: the target exists; do not create it. */
  noCreate?: boolean;
  /** --target-is-zero (with -n): the existing target reads as zeroes. */
  targetIsZero?: boolean;
  /** -S in bytes (0: write everything). */
  sparseSize?: number;
  /** -m */
  inFlight?: number;
  /** -W */
  outOfOrder?: boolean;
  /** -r in bytes per second. */
  rateLimit?: number;
  /** -t: 'unsafe' skips the final flush. */
  cache?: CacheMode;
  /** -U */
  forceShare?: boolean;
  /** --salvage: unreadable source sectors become zeroes (reported through onWarning). */
  salvage?: boolean;
  /** --bitmaps */
  bitmaps?: boolean;
  onProgress?: (done: number, total: number) => void;
  onWarning?: (message: string) => void;
}

export async function convertImage(a: ConvertArgs): Promise<void> {
  const outFormat = a.outputFormat ?? 'raw';
  const driver = getFormat(outFormat);
  if (a.sources.length === 0) throw new Error('Must specify image file name');
  if (a.targetIsZero && !a.noCreate) throw new Error('--target-is-zero requires use of -n flag');
  if (a.backingFile !== undefined) {
    if (a.noCreate) throw new Error('-B makes no sense when skipping image creation (-n)');
    if (a.backingFormat === undefined) throw new Error('Use of backing file requires explicit backing format');
    if (!driver.createOptions.some((o) => o.name === 'backing_file')) {
      throw new Error(`Backing file not supported for file format '${outFormat}'`);
    }
  }
  if (a.snapshot !== undefined && a.sources.length > 1) {
    throw new Error('No support for concatenating multiple snapshot');
  }

  if (a.compress) warmCompression(expectedCompressionType(a));

  const sources: ImageNode[] = [];
  const closers: (() => Promise<void>)[] = [];
  try {
    const inlineCachedReads = readsInline(outFormat, a.target);
    for (const name of a.sources) {
      const img = await openImageReporting(name, { format: a.sourceFormat, readOnly: true, forceShare: a.forceShare, inlineCachedReads });
      closers.push(() => closeImage(img));
      sources.push(img);
    }
    if (a.bitmaps) throw new Error('Source lacks bitmap support');
    const views: BlockNode[] = [];
    for (const img of sources) {
      if (a.snapshot === undefined) {
        views.push(img);
        continue;
      }
      const snap = await loadSnapshot(img, a.snapshot);
      closers.push(() => snap.close());
      views.push(snap);
    }
    await assertNotInChains(a.target, sources, outFormat);
    const total = views.reduce((n, s) => n + s.size(), 0);
    const args = { ...a, options: keepSourceUuid(a.options ?? [], sources) };
    if (outFormat === 'ova') await writeOvaTarget(args, views, total);
    else await writeTarget(args, outFormat, views, total);
  } finally {
    for (const close of closers.reverse()) await close().catch(() => {});
  }
}

/**
 * Whether the sources' cached bytes are read on the main thread (the file
 * protocol's inlineCachedReads). Yes for a raw target on a host file: its writes
 * cost the main thread nothing but issuing them, so it has time to copy cached
 * source bytes itself, which saves a thread hand-off per read and leaves libuv's
 * pool (one thread per core) to the writes. A target with metadata keeps the main
 * thread busy allocating, and reads done there held back its writes (1 GiB raw ->
 * qcow2: 0.38 -> 0.44 s), so its sources read on the pool.
 */
function readsInline(outFormat: string, target: string): InlineCachedReads | undefined {
  return outFormat === 'raw' && findProtocol(target) === null ? 'pool-busy' : undefined;
}

/** `-O ova`: the disk as a hidden streamOptimized VMDK, then packed into the OVA. */
async function writeOvaTarget(a: ConvertArgs, sources: BlockNode[], total: number): Promise<void> {
  if (a.noCreate) throw new Error('-n cannot be used with -O ova (the OVA is always written anew)');
  // The writer (and tar-stream) loads for -O ova only.
  const { optionString, ovaSettings, packOva } = await import('../formats/ova/writer.js');
  const settings = ovaSettings(mergeOptionStrings(a.options ?? []));
  const work = partialName(a.target);
  const disk = `${work}-disk1.vmdk`;
  try {
    // -c is implied: a streamOptimized VMDK is always compressed.
    const vmdk = { ...a, target: disk, options: [optionString(settings.vmdkOptions)], compress: false };
    await writeTarget(vmdk, 'vmdk', sources, total);
    await packOva(a.target, work, disk, total, settings);
  } finally {
    await rm(disk, { force: true });
  }
}

/** The -o arguments with `uuid=keep` turned into the source image's disk UUID. */
function keepSourceUuid(options: readonly string[], sources: readonly ImageNode[]): readonly string[] {
  if (mergeOptionStrings(options).get('uuid') !== 'keep') return options;
  if (sources.length !== 1) throw new Error("Parameter 'uuid': 'keep' needs exactly one source image");
  const source = sources[0]!;
  if (source.diskUuid === undefined) {
    throw new Error(`Parameter 'uuid': 'keep' needs a source with a disk UUID, and '${source.filename}' (${source.driver}) has none`);
  }
  return [...options, `uuid=${source.diskUuid}`];
}

async function writeTarget(a: ConvertArgs, outFormat: string, sources: BlockNode[], total: number): Promise<void> {
  const created = !a.noCreate;
  // A new target is written under a hidden name and renamed into place when done,
  // unless its format writes files named after it (split or flat VMDK extents).
  const oneFile = getFormat(outFormat).createsOneFile?.(mergeOptionStrings(a.options ?? [])) ?? true;
  // A protocol target (nbd://…) is not a host file: it is written in place, never renamed or removed.
  const hostFile = findProtocol(a.target) === null;
  const work = created && oneFile && hostFile && !(await exists(a.target)) ? partialName(a.target) : a.target;
  if (created) {
    await createImage({
      filename: work,
      format: outFormat,
      size: String(total),
      backingFile: a.backingFile,
      backingFormat: a.backingFormat,
      options: a.options ?? [],
    }).catch((e: Error) => {
      // The hidden work name is ours, not the user's: the message names the target once.
      const detail = (e instanceof CreateError ? e.detail : e.message).split(work).join(a.target);
      throw new Error(`${a.target}: error while converting ${outFormat}: ${detail}`);
    });
  } else if (a.options?.length) {
    throw new Error('-o has no effect when skipping image creation');
  }

  let target: ImageNode | null = null;
  try {
    target = await openImageReporting(work, { format: outFormat, noFlush: a.cache === 'unsafe' });
    if (target.size() < total) throw new Error('output file is smaller than input file');
    if (a.compress && !target.writeCompressed) throw new Error('Compression not supported for this file format');
    // -B (or -o backing_file): the target is an overlay, its backing shows what is not copied.
    const hasBacking = created && target.backingFilename !== null;
    const segments: CopySegment[] = [];
    let at = 0;
    for (const s of sources) {
      segments.push({ source: s, base: hasBacking ? s.backing : null, sourceOffset: 0, targetOffset: at, length: s.size() });
      at += s.size();
    }
    await copySegments({
      target,
      segments,
      skipUnallocated: hasBacking,
      sparseSize: a.sparseSize ?? 4096,
      // A new image reads as zeroes, except raw on a protocol target: the export keeps its old bytes.
      targetIsZero: created ? !hasBacking && (hostFile || target.driver !== 'raw') : Boolean(a.targetIsZero),
      compress: Boolean(a.compress),
      inFlight: a.inFlight ?? 8,
      outOfOrder: Boolean(a.outOfOrder),
      rateLimit: a.rateLimit ?? 0,
      salvage: a.salvage
        ? (offset, err) => a.onWarning?.(`error while reading at byte ${offset}: ${err.message}`)
        : undefined,
      onProgress: a.onProgress,
    });
    await target.flush();
    const t = target;
    target = null;
    await closeImage(t);
    if (work !== a.target) await rename(work, a.target);
  } catch (e) {
    if (target) await closeImage(target).catch(() => {});
    if (created && hostFile) await rm(work, { force: true });
    throw e;
  }
}

/**
 * The codec a compressed convert will most likely use, to warm the workers with:
 * what -o compression_type names for a new target, else zlib (qcow2's default). A
 * wrong guess only costs loading a codec that goes unused; bad options are left to
 * image creation to report.
 */
function expectedCompressionType(a: ConvertArgs): CompressionType {
  if (a.noCreate) return 'zlib';
  try {
    return mergeOptionStrings(a.options ?? []).get('compression_type') === 'zstd' ? 'zstd' : 'zlib';
  } catch {
    return 'zlib';
  }
}

/** The hidden name a new target is written under: ".NAME.tsemu-partial-PID" in the same folder. */
function partialName(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.tsemu-partial-${process.pid}`);
}

async function exists(file: string): Promise<boolean> {
  return lstat(file).then(
    () => true,
    () => false,
  );
}
