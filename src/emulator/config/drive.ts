/**
 * `--drive` as QEMU's -drive spells it, for tsemu run:
 *
 *   file=PATH|URL|json:{...}  format=FMT  if=virtio|none  id=NAME
 *   readonly=on|off  snapshot=on|off  cache=writeback|none|writethrough|directsync|unsafe
 *   discard=ignore|unmap  serial=TEXT
 *
 * parseDrive() checks the words and values (QEMU's "Invalid parameter" for an
 * unknown key). if= defaults to virtio (QEMU's riscv virt defaults to none,
 * which attaches nothing); drives without id= are named virtio0, virtio1, …
 * by their position, as QEMU names if=virtio drives. openDrive() opens the image through the block layer (any
 * format, protocol and backing chain openImage() opens). With snapshot=on (or
 * -snapshot) the image is opened read-only and writes go to a temporary qcow2
 * overlay over it, as QEMU's temporary snapshot does: created in the temporary
 * folder, unlinked as soon as it is open (so nothing is left behind, even if
 * tsemu is killed), flushes skipped.
 *
 * Cache modes, as far as the block layer can honour them: writeback (the
 * default) and none give the guest a write cache it flushes (the host page
 * cache is not bypassed: the file protocol has no O_DIRECT); writethrough and
 * directsync present no write cache, so every write is flushed before it
 * completes; unsafe ignores flushes (the node is opened with noFlush).
 * Host files read what the page cache holds on the calling thread
 * (inlineCachedReads 'always'): a guest's disk request waits for its read, and
 * the hand-off to an I/O thread and back was most of a cached 64 KiB read.
 */
import { unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { parseBool, parseOptionString } from '../../block/options.js';
import { closeImage, openImage } from '../../block/open.js';
import { createImage } from '../../block/ops/create.js';
import type { ImageNode } from '../../block/formats/format.js';

export const CACHE_MODES = ['writeback', 'none', 'writethrough', 'directsync', 'unsafe'] as const;
export type CacheMode = (typeof CACHE_MODES)[number];

export interface DriveSpec {
  file: string;
  format?: string;
  /** virtio: a virtio-blk device of its own; none: only for --device virtio-blk,drive=ID. */
  interface: 'virtio' | 'none';
  id: string;
  readOnly: boolean;
  snapshot: boolean;
  cache: CacheMode;
  discard: 'ignore' | 'unmap';
  serial?: string;
}

const KEYS = new Set(['file', 'format', 'if', 'id', 'readonly', 'snapshot', 'cache', 'discard', 'serial']);

function oneOf<T extends string>(value: string, allowed: readonly T[], what: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new Error(`${what} must be one of ${allowed.join(', ')}, not '${value}'`);
}

/** Parses one --drive argument; `index` names drives without id= (virtio0, virtio1, …). */
export function parseDrive(text: string, index: number): DriveSpec {
  try {
    const o = parseOptionString(text);
    for (const key of o.keys()) if (!KEYS.has(key)) throw new Error(`Invalid parameter '${key}'`);
    const file = o.get('file');
    if (!file) throw new Error('file= is missing');
    const iface = oneOf(o.get('if') ?? 'virtio', ['virtio', 'none'] as const, 'if');
    const id = o.get('id') ?? (iface === 'virtio' ? `virtio${index}` : undefined);
    if (id === undefined) throw new Error('if=none needs an id= for --device virtio-blk,drive=ID');
    return {
      file,
      format: o.get('format'),
      interface: iface,
      id,
      readOnly: parseBool(o.get('readonly') ?? 'off', 'readonly'),
      snapshot: parseBool(o.get('snapshot') ?? 'off', 'snapshot'),
      cache: oneOf(o.get('cache') ?? 'writeback', CACHE_MODES, 'cache'),
      discard: oneOf(o.get('discard') ?? 'ignore', ['ignore', 'unmap'] as const, 'discard'),
      serial: o.get('serial'),
    };
  } catch (e) {
    throw new Error(`--drive ${text}: ${(e as Error).message}`);
  }
}

/** Whether the guest sees a volatile write cache for `cache`. */
export function hasWriteCache(cache: CacheMode): boolean {
  return cache !== 'writethrough' && cache !== 'directsync';
}

/** Opens the drive's image (under a temporary overlay with snapshot=on); closeImage() closes it with its chain. */
export async function openDrive(spec: DriveSpec): Promise<ImageNode> {
  const noFlush = spec.cache === 'unsafe';
  const inlineCachedReads = 'always';
  if (!spec.snapshot) return openImage(spec.file, { format: spec.format, readOnly: spec.readOnly, noFlush, inlineCachedReads });
  const base = await openImage(spec.file, { format: spec.format, readOnly: true, inlineCachedReads });
  const overlayFile = path.join(tmpdir(), `tsemu-snapshot-${randomUUID()}.qcow2`);
  try {
    const backing = /^[a-z][a-z0-9+.-]*:/i.test(spec.file) ? spec.file : path.resolve(spec.file);
    await createImage({
      filename: overlayFile, format: 'qcow2', size: String(base.size()), backingFile: backing, backingFormat: base.driver,
      unsafe: true, options: [],
    });
    const overlay = await openImage(overlayFile, { format: 'qcow2', backing: false, noFlush: true, inlineCachedReads });
    overlay.attachBacking(base);
    return overlay;
  } catch (e) {
    await closeImage(base);
    throw new Error(`${spec.file}: could not create the temporary snapshot overlay: ${(e as Error).message}`);
  } finally {
    await unlink(overlayFile).catch(() => {});
  }
}
