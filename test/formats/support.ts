/**
 * Shared steps of the format interop tests: tsemu's `img info` JSON next to
 * qemu-img's for the same file, writing a scripted set of patterned writes
 * through tsemu's block layer (and the raw bytes they should produce), the real
 * qemu-img's check and compare verdicts on an image of any format, and hashing a
 * file to prove an open of a hostile image left it unchanged.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { closeImage, openImage } from '../../src/block/open.js';
import { collectImageInfo, formatImageInfoJson } from '../../src/block/ops/info.js';
import { mustRun, qemuImg } from '../helpers/peers.js';
import { patternBytes } from '../helpers/pattern.js';

/** tsemu's and qemu-img's `info --output=json` of the same file, parsed. */
export async function infoBoth(file: string): Promise<{ tsemu: unknown; qemu: unknown }> {
  const q = await mustRun(qemuImg(['info', '-U', '--output=json', file]), `qemu-img info ${file}`);
  const list = await collectImageInfo(file, { forceShare: true });
  return { tsemu: JSON.parse(formatImageInfoJson(list, false)), qemu: JSON.parse(q.stdout) };
}

export async function assertInfoMatches(file: string): Promise<void> {
  const { tsemu, qemu } = await infoBoth(file);
  assert.deepStrictEqual(tsemu, qemu, `img info --output=json ${file}`);
}

/** One write of a script: `length` patterned bytes at `offset` (seq picks the pattern). */
export interface ScriptedWrite {
  offset: number;
  length: number;
}

/** Writes `writes` into `file` through tsemu and returns the whole disk as it should now read. */
export async function writeScript(file: string, size: number, writes: readonly ScriptedWrite[], format?: string): Promise<Uint8Array> {
  const expected = new Uint8Array(size);
  const img = await openImage(file, { format });
  try {
    for (const [seq, w] of writes.entries()) {
      const data = patternBytes(17, seq, w.length);
      await img.write(w.offset, data);
      expected.set(data, w.offset);
    }
    await img.flush();
  } finally {
    await closeImage(img);
  }
  return expected;
}

/** qemu-img check (when `checked`) passes and qemu-img compare finds `file` equal to `expected`. */
export async function qemuAgrees(file: string, format: string, expected: Uint8Array, dir: string, checked = true): Promise<void> {
  if (checked) {
    const check = await qemuImg(['check', '-f', format, file]);
    assert.equal(check.code, 0, `qemu-img check ${file}:\n${check.stdout}${check.stderr}`);
  }
  const raw = path.join(dir, `expected-${path.basename(file)}.raw`);
  await writeFile(raw, expected);
  await mustRun(qemuImg(['compare', '-f', format, '-F', 'raw', file, raw]), `qemu-img compare ${file}`);
}
