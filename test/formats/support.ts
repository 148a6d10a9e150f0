/**
 * Shared steps of the format interop tests: tsemu's `img info` and `img map`
 * JSON next to qemu-img's for the same file, writing a scripted set of patterned writes
 * through tsemu's block layer (and the raw bytes they should produce), the real
 * qemu-img's check and compare verdicts on an image of any format, and hashing a
 * file to prove an open of a hostile image left it unchanged.
 */
import assert from 'node:assert/strict';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { closeImage, openImage } from '../../src/block/open.js';
import { collectImageInfo, formatImageInfoJson } from '../../src/block/ops/info.js';
import { convertImage } from '../../src/block/ops/convert.js';
import { mapImage } from '../../src/block/ops/map.js';
import { mustRun, qemuImg } from '../helpers/peers.js';
import { optionHelpLine } from '../../src/block/ops/create.js';
import { getFormat } from '../../src/block/formats/index.js';
import { DISK_UUID_OPTION } from '../../src/block/formats/disk-uuid.js';
import { patternBytes } from '../helpers/pattern.js';

/** qemu-img's `-o help` text with `extra` option lines added where the sorted list puts them. */
function withHelpLines(qemuHelp: string, extra: readonly string[]): string {
  const lines = qemuHelp.split('\n');
  const end = lines.indexOf('', 1);
  const sorted = [...lines.slice(1, end), ...extra].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return [lines[0], ...sorted, ...lines.slice(end)].join('\n');
}

/** qemu-img's `-o help` text with tsemu's `uuid` option (vdi, vmdk, vpc, vhdx; qemu-img 7.2 has none). */
export function qemuHelpWithUuid(qemuHelp: string): string {
  return withHelpLines(qemuHelp, [optionHelpLine(DISK_UUID_OPTION)]);
}

/** qemu-img's `-o help` text of `format` with tsemu's own options `extras` (by name) added. */
export function qemuHelpWithExtras(format: string, qemuHelp: string, extras: readonly string[]): string {
  return withHelpLines(qemuHelp, getFormat(format).createOptions.filter((o) => extras.includes(o.name)).map(optionHelpLine));
}

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

/** tsemu's `img map --output=json` of `file` is qemu-img's, entry for entry. */
export async function assertMapMatches(file: string): Promise<void> {
  const q = await mustRun(qemuImg(['map', '-U', '--output=json', file]), `qemu-img map ${file}`);
  let out = '';
  await mapImage({ filename: file, output: 'json', forceShare: true }, (t) => { out += t; });
  assert.deepStrictEqual(JSON.parse(out), JSON.parse(q.stdout), `img map --output=json ${file}`);
}

/** One write of a script: `length` patterned bytes at `offset` (seq picks the pattern). */
export interface ScriptedWrite {
  offset: number;
  length: number;
}

/** What a disk should read as: zeroes (or `base`) with these pieces laid over, in order. */
export interface Expected {
  size: number;
  pieces: { offset: number; data: Uint8Array }[];
}

/** Writes `writes` into `file` through tsemu and returns what the disk should now read (over zeroes). */
export async function writeScript(file: string, size: number, writes: readonly ScriptedWrite[], format?: string): Promise<Expected> {
  const expected: Expected = { size, pieces: [] };
  const img = await openImage(file, { format });
  try {
    for (const [seq, w] of writes.entries()) {
      const data = patternBytes(17, seq, w.length);
      await img.write(w.offset, data);
      expected.pieces.push({ offset: w.offset, data });
    }
    await img.flush();
  } finally {
    await closeImage(img);
  }
  return expected;
}

/** The expected disk as a (sparse) raw file in `dir`. */
export async function expectedRaw(expected: Expected, dir: string, name: string): Promise<string> {
  const raw = path.join(dir, `expected-${name}.raw`);
  const fh = await open(raw, 'w');
  try {
    await fh.truncate(expected.size);
    for (const p of expected.pieces) await fh.write(p.data, 0, p.data.length, p.offset);
  } finally {
    await fh.close();
  }
  return raw;
}

/** qemu-img check (when `checked`) passes and qemu-img compare finds `file` equal to `expected`. */
export async function qemuAgrees(file: string, format: string, expected: Expected, dir: string, checked = true): Promise<void> {
  if (checked) {
    const check = await qemuImg(['check', '-f', format, file]);
    assert.equal(check.code, 0, `qemu-img check ${file}:\n${check.stdout}${check.stderr}`);
  }
  const raw = await expectedRaw(expected, dir, path.basename(file));
  await mustRun(qemuImg(['compare', '-f', format, '-F', 'raw', file, raw]), `qemu-img compare ${file}`);
}

/** tsemu's view of `file` (converted to raw by tsemu) is what qemu-img reads in it. */
export async function tsemuReadsAsQemu(file: string, format: string, dir: string): Promise<void> {
  const raw = path.join(dir, `tsemu-view-${path.basename(file)}.raw`);
  await convertImage({ sources: [file], target: raw, sourceFormat: format, outputFormat: 'raw', forceShare: true });
  await mustRun(qemuImg(['compare', '-U', '-f', format, '-F', 'raw', file, raw]), `qemu-img compare ${file} with tsemu's view`);
}
