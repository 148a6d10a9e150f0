/**
 * Interop, direction qemu -> tsemu: for every matrix configuration qemu-img
 * creates the image and qemu-io writes the workload; tsemu must read every byte
 * back as the model says, through its block layer and through
 * `tsemu img convert -O raw` (run from another folder, so relative backing
 * names must resolve against the image's folder). qemu-img's own view is
 * checked against the model first, so a wrong model cannot hide a bug.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describeMismatch, readImageWithQemu, readImageWithTsemu } from '../helpers/images.js';
import { mustRun, qemuImg, scratchDir, tsemu } from '../helpers/peers.js';
import { buildWithQemu } from './build.js';
import { CONFIGS } from './matrix.js';

function assertSame(what: string, actual: Uint8Array, expected: Uint8Array): void {
  const m = describeMismatch(what, actual, expected);
  assert.equal(m, null, m ?? '');
}

for (const cfg of CONFIGS) {
  test(`qemu writes, tsemu reads: ${cfg.name}`, async () => {
    const { dir, cleanup } = await scratchDir();
    try {
      const built = await buildWithQemu(cfg, dir);
      assertSame('qemu-img convert vs the model (harness self-check)', await readImageWithQemu(built.image, dir), built.expected);

      assertSame('tsemu block layer', await readImageWithTsemu(built.image), built.expected);

      const out = path.join(dir, 'tsemu-out.raw');
      await mustRun(tsemu(['img', 'convert', '-O', 'raw', built.image, out], { cwd: tmpdir() }), 'tsemu img convert -O raw');
      assertSame('tsemu img convert -O raw', new Uint8Array(await readFile(out)), built.expected);

      if (built.expectedAtS1) {
        const qemuS1 = path.join(dir, 'qemu-s1.raw');
        await mustRun(qemuImg(['convert', '-l', 's1', '-O', 'raw', built.image, qemuS1]), 'qemu-img convert -l s1');
        assertSame('qemu-img snapshot s1 vs the model (harness self-check)', new Uint8Array(await readFile(qemuS1)), built.expectedAtS1);
        const s1 = path.join(dir, 'tsemu-s1.raw');
        await mustRun(tsemu(['img', 'convert', '-l', 'snapshot.name=s1', '-O', 'raw', built.image, s1]), 'tsemu img convert -l s1');
        assertSame('tsemu img convert -l snapshot.name=s1', new Uint8Array(await readFile(s1)), built.expectedAtS1);
      }
    } finally {
      await cleanup();
    }
  });
}
