/**
 * `img commit`: copies what an overlay (and any layers between it and the base)
 * allocates down into a backing image, as qemu-img commit does.
 *
 * The chain is opened with the base writable and everything else read-only
 * (the top too when it is to be emptied). The base grows to the top's size if it
 * is smaller (never shrinks). The copy engine then copies every range allocated
 * above the base (zero ranges become zero writes), the base is flushed, and the
 * top is emptied (every cluster deallocated, so it shows the base again) unless
 * -d was given or the base was chosen with -b: the layers between base and top
 * then hold stale data and the top must keep its own, so -b implies -d. Emptying
 * needs the format's makeEmpty hook (chain.ts); without it the top keeps its
 * data, which now equals what it shows through the base (qemu-img likewise
 * ignores formats that cannot be emptied).
 */
import { closeImage } from '../open.js';
import { copySegments } from './copy-engine.js';
import { openChain } from './chain.js';

export interface CommitArgs {
  filename: string;
  format?: string;
  /** -b: the layer to commit into (default: the immediate backing file). */
  base?: string;
  /** -d: keep the top's content. */
  drop?: boolean;
  /** -r in bytes per second. */
  rateLimit?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Commits and returns qemu-img's message ("Image committed."). */
export async function commitImage(a: CommitArgs): Promise<string> {
  const empty = !a.drop && a.base === undefined;
  const { top, writable } = await openChain(a.filename, {
    format: a.format,
    writableTop: empty,
    writableLayer: a.base ?? 1,
  });
  try {
    const base = writable!;
    if (base.size() < top.size()) await base.truncate(top.size());
    await copySegments({
      target: base,
      segments: [{ source: top, base, sourceOffset: 0, targetOffset: 0, length: top.size() }],
      skipUnallocated: true,
      sparseSize: 4096,
      targetIsZero: false,
      compress: false,
      inFlight: 8,
      outOfOrder: false,
      rateLimit: a.rateLimit ?? 0,
      onProgress: a.onProgress,
    });
    await base.flush();
    // Like qemu-img, a format that cannot empty an image keeps its (now committed) data.
    if (empty && top.makeEmpty) {
      await top.makeEmpty();
      await top.flush();
    }
  } finally {
    await closeImage(top);
  }
  return 'Image committed.';
}
