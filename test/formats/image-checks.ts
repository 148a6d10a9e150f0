/**
 * Checks the format tests repeat on one image file: running a format's own
 * check on the file opened read-only, the info/map/check trio a well-formed
 * image must pass, and the hostile-image rule (opening and reading a damaged
 * image is a clear error that leaves the file's bytes unchanged).
 */
import assert from 'node:assert/strict';
import { closeImage, openImage } from '../../src/block/open.js';
import { FileNode } from '../../src/block/protocols/file.js';
import { sha256File } from '../helpers/pattern.js';
import { assertInfoMatches, assertMapMatches } from './support.js';

/** A format's check function (checkVdi, checkVmdk, …) as the tests call it. */
export type FormatCheck = (file: FileNode, opts: { log: (line: string) => void }) => Promise<{ corruptions: number }>;

/** Runs fn on `file` opened read-only through the file protocol, closing it after. */
export async function withReadOnlyFile<T>(file: string, fn: (f: FileNode) => Promise<T>): Promise<T> {
  const f = await FileNode.open(file, { readOnly: true });
  try {
    return await fn(f);
  } finally {
    await f.close();
  }
}

/** tsemu's info and map JSON are qemu-img's, and the format's check finds no corruption. */
export async function assertReportsMatchAndClean(file: string, check: FormatCheck): Promise<void> {
  await assertInfoMatches(file);
  await assertMapMatches(file);
  const counts = await withReadOnlyFile(file, (f) => check(f, { log: () => {} }));
  assert.equal(counts.corruptions, 0);
}

/** Opening `file` as `format` and reading `readLength` bytes (default: the whole disk) fails with `pattern`; the file is unchanged. */
export async function assertHostileOpenFails(file: string, format: string, pattern: RegExp, readLength?: number): Promise<void> {
  const before = await sha256File(file);
  const attempt = async (): Promise<void> => {
    const img = await openImage(file, { format });
    try {
      await img.read(0, new Uint8Array(readLength ?? img.size()));
    } finally {
      await closeImage(img);
    }
  };
  await assert.rejects(attempt, pattern);
  assert.equal(await sha256File(file), before);
}
