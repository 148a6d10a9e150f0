/**
 * Interop, direction tsemu -> qemu: for every matrix configuration tsemu
 * creates the image (`tsemu img create`/`convert -c`/`snapshot -c`) and writes
 * the workload through its block layer; then the real qemu-img must find every
 * layer consistent (`qemu-img check` exits 0) and the content identical to the
 * model (`qemu-img compare` exits 0), and a chain must record its backing
 * files by the relative names it was given.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { qemuImg, scratchDir } from '../helpers/peers.js';
import { buildWithTsemu } from './build.js';
import { CONFIGS } from './matrix.js';

async function assertQemuCompares(expected: Uint8Array, image: string, dir: string, tag: string, snapshot?: string): Promise<void> {
  const raw = path.join(dir, `expected-${tag}.raw`);
  await writeFile(raw, expected);
  let target = image;
  if (snapshot) {
    target = path.join(dir, `snapshot-${tag}.raw`);
    const r = await qemuImg(['convert', '-l', snapshot, '-O', 'raw', image, target]);
    assert.equal(r.code, 0, `qemu-img convert -l ${snapshot} failed\n${r.stdout}${r.stderr}`);
  }
  const r = await qemuImg(['compare', '-f', 'raw', raw, target]);
  assert.equal(r.code, 0, `qemu-img compare (${tag}) exited ${r.code}\n${r.stdout}${r.stderr}`);
}

for (const cfg of CONFIGS) {
  test(`tsemu writes, qemu reads: ${cfg.name}`, async () => {
    const { dir, cleanup } = await scratchDir();
    try {
      const built = await buildWithTsemu(cfg, dir);
      for (const layer of built.layers) {
        const r = await qemuImg(['check', layer]);
        assert.equal(r.code, 0, `qemu-img check ${path.basename(layer)} exited ${r.code}\n${r.stdout}${r.stderr}`);
      }
      await assertQemuCompares(built.expected, built.image, dir, 'current');
      if (built.expectedAtS1) await assertQemuCompares(built.expectedAtS1, built.image, dir, 's1', 's1');
      for (const [i, layer] of built.layers.entries()) {
        if (i === 0) continue;
        const info = await qemuImg(['info', '--output=json', layer]);
        assert.equal(info.code, 0, info.stderr);
        const parsed = JSON.parse(info.stdout) as Record<string, unknown>;
        assert.equal(parsed['backing-filename'], path.basename(built.layers[i - 1]!), 'backing file name as given to img create');
        assert.equal(parsed['backing-filename-format'], 'qcow2');
      }
    } finally {
      await cleanup();
    }
  });
}
