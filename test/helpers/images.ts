/**
 * Image helpers shared by the interop, crash and hostile tests: read a whole
 * image's guest-visible content through the tsemu library (openImage + read)
 * or through the real qemu-img (convert to raw), and create an expected raw
 * file to compare against. Images in these tests are small (a few MiB), so whole
 * content fits in memory.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { closeImage, openImage, type OpenImageOptions } from '../../src/block/open.js';
import { mustRun, qemuImg } from './peers.js';

const READ_CHUNK = 1 << 20;

/** The guest-visible bytes of `filename` read through tsemu's block layer. */
export async function readImageWithTsemu(filename: string, opts: OpenImageOptions = {}): Promise<Uint8Array> {
  const img = await openImage(filename, { readOnly: true, ...opts });
  try {
    const out = new Uint8Array(img.size());
    for (let pos = 0; pos < out.length; pos += READ_CHUNK) {
      await img.read(pos, out.subarray(pos, Math.min(out.length, pos + READ_CHUNK)));
    }
    return out;
  } finally {
    await closeImage(img);
  }
}

/** The guest-visible bytes of `filename` as qemu-img converts them to raw (in `dir`). */
export async function readImageWithQemu(filename: string, dir: string, format?: string): Promise<Uint8Array> {
  const out = path.join(dir, `qemu-view-${path.basename(filename)}.raw`);
  const fmt = format ? ['-f', format] : [];
  await mustRun(qemuImg(['convert', '-U', ...fmt, '-O', 'raw', filename, out]), `qemu-img convert ${filename}`);
  return new Uint8Array(await readFile(out));
}

/** A readable description of where two contents differ (for assertion messages). */
export function describeMismatch(what: string, actual: Uint8Array, expected: Uint8Array): string | null {
  if (actual.length !== expected.length) return `${what}: size ${actual.length}, expected ${expected.length}`;
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) {
      return `${what}: first difference at byte ${i} (0x${i.toString(16)}): got 0x${actual[i]!.toString(16)}, expected 0x${expected[i]!.toString(16)}`;
    }
  }
  return null;
}

/**
 * The real qemu-img's verdict on a qcow2 image tsemu wrote: `check` must find
 * nothing wrong (exit 0) and `compare` must find it equal to `expected`
 * (written to `dir`/expected.raw for the comparison).
 */
export async function qemuCheckAndCompare(file: string, expected: Uint8Array, dir: string): Promise<void> {
  const check = await qemuImg(['check', file]);
  assert.equal(check.code, 0, `qemu-img check ${file}:\n${check.stdout}${check.stderr}`);
  const raw = path.join(dir, 'expected.raw');
  await writeFile(raw, expected);
  await mustRun(qemuImg(['compare', '-f', 'qcow2', '-F', 'raw', file, raw]), `qemu-img compare ${file}`);
}
