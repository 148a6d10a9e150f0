import { Args, Flags } from '@oclif/core';
import { defineObjects, objectFlag } from '../../cli/objects.js';
import { TsemuCommand } from '../base.js';
import { convertImage } from '../../block/ops/convert.js';
import { parseCacheMode, parseCoroutines, parseRateLimit, parseSparseSize } from '../../block/ops/copy-args.js';
import { ProgressBar } from '../../cli/progress.js';
import { createOptionsHelp, isOptionsHelp } from '../../block/ops/create.js';

export default class ImgConvert extends TsemuCommand {
  static override summary = 'Convert, copy or concatenate disk images';
  static override description =
    'Copy FILENAME (several are concatenated) into OUTPUT_FILENAME in format OUTPUT_FMT, copying only ' +
    'allocated, non-zero data. With -B the output is an overlay of BACKING_FILE holding only what the ' +
    "sources' top layers allocate. An OVA source (appliance.ova) is its first disk; appliance.ova#N is disk N, " +
    'numbered from 1 in the OVF DiskSection order. -O ova writes an OVF 1.0 appliance with the disk as a ' +
    'streamOptimized VMDK (-o adapter_type, hwversion, toolsversion, uuid, manifest=on|off).';
  static override usage =
    'img convert [--object OBJECTDEF] [-c] [-p] [-q] [-n] [-f FMT] [-t CACHE] [-T SRC_CACHE] [-O OUTPUT_FMT] ' +
    '[-B BACKING_FILE [-F BACKING_FMT]] [-o OPTIONS] [-l SNAPSHOT_PARAM] [-S SPARSE_SIZE] [-r RATE_LIMIT] ' +
    '[-m NUM_COROUTINES] [-W] [-C] [--salvage] [--target-is-zero] [--bitmaps] [-U] FILENAME [FILENAME2 [...]] OUTPUT_FILENAME';
  static override strict = false;
  static override flags = {
    object: objectFlag,
    compress: Flags.boolean({ char: 'c', description: 'compress the output (formats that support it)' }),
    progress: Flags.boolean({ char: 'p', description: 'show progress' }),
    quiet: Flags.boolean({ char: 'q', description: 'quiet mode' }),
    'no-create': Flags.boolean({ char: 'n', description: 'write into an existing OUTPUT_FILENAME' }),
    format: Flags.string({ char: 'f', description: 'source format (probed when absent)' }),
    cache: Flags.string({ char: 't', description: 'output cache mode (none, writeback, unsafe, directsync, writethrough)' }),
    'source-cache': Flags.string({ char: 'T', description: 'source cache mode' }),
    'output-format': Flags.string({ char: 'O', description: 'output format (default raw)' }),
    'backing-file': Flags.string({ char: 'B', description: 'make the output an overlay of this backing file' }),
    'backing-format': Flags.string({ char: 'F', description: 'format of the -B backing file' }),
    options: Flags.string({ char: 'o', description: 'output format options', multiple: true, multipleNonGreedy: true }),
    snapshot: Flags.string({ char: 'l', description: 'convert this internal snapshot (snapshot.id=ID,snapshot.name=NAME or ID_OR_NAME)' }),
    sparse: Flags.string({ char: 'S', description: 'minimum run of zero bytes kept sparse (default 4k, 0 writes everything)' }),
    'rate-limit': Flags.string({ char: 'r', description: 'bytes per second' }),
    coroutines: Flags.string({ char: 'm', description: 'requests in flight, 1-16 (default 8)' }),
    'out-of-order': Flags.boolean({ char: 'W', description: 'allow out-of-order writes' }),
    'copy-offload': Flags.boolean({ char: 'C', description: 'copy offloading (done as an ordinary copy)' }),
    salvage: Flags.boolean({ description: 'treat unreadable source sectors as zeroes' }),
    'target-is-zero': Flags.boolean({ description: 'the existing (-n) output already reads as zeroes' }),
    bitmaps: Flags.boolean({ description: 'copy persistent bitmaps' }),
    'force-share': Flags.boolean({ char: 'U', description: 'open the sources without taking locks' }),
  };
  static override args = {
    filenames: Args.string({ description: 'source images, then the output image' }),
  };

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(ImgConvert);
    const names = argv as string[];
    if (flags.options && isOptionsHelp(flags.options)) {
      process.stdout.write(createOptionsHelp(flags['output-format'] ?? 'raw', names.length >= 2 ? names[names.length - 1] : undefined));
      return;
    }
    if (names.length < 2) throw new Error('Must specify image file name');
    if (flags['copy-offload'] && flags.compress) throw new Error('Compression not supported with copy offloading enabled');
    defineObjects(flags.object);
    const cache = parseCacheMode(flags.cache, 'cache', 'unsafe');
    parseCacheMode(flags['source-cache'], 'source cache', 'writeback');
    const bar = new ProgressBar(Boolean(flags.progress) && !flags.quiet);
    await convertImage({
      sources: names.slice(0, -1),
      target: names[names.length - 1]!,
      sourceFormat: flags.format,
      outputFormat: flags['output-format'],
      options: flags.options,
      backingFile: flags['backing-file'],
      backingFormat: flags['backing-format'],
      snapshot: flags.snapshot,
      compress: flags.compress,
      noCreate: flags['no-create'],
      targetIsZero: flags['target-is-zero'],
      sparseSize: parseSparseSize(flags.sparse),
      inFlight: parseCoroutines(flags.coroutines),
      outOfOrder: flags['out-of-order'],
      rateLimit: parseRateLimit(flags['rate-limit']),
      cache,
      forceShare: flags['force-share'],
      salvage: flags.salvage,
      bitmaps: flags.bitmaps,
      onProgress: (done, total) => bar.update(done, total),
      onWarning: (m) => process.stderr.write(`tsemu: warning: ${m}\n`),
    });
    bar.update(1, 1);
    bar.end();
  }
}
