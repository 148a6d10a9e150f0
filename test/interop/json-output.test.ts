/**
 * Interop of machine-readable output: `tsemu img info/map/check/measure
 * --output=json` must parse to exactly what qemu-img prints for the same
 * command on the same file (same keys, same values), with the same exit code.
 * The files are the matrix images, made once by qemu-img/qemu-io and once by
 * tsemu; both programs run on the very same file with the same arguments, so
 * even actual-size must agree.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { qemuImg, scratchDir, tsemu } from '../helpers/peers.js';
import { type BuiltImage, buildWithQemu, buildWithTsemu } from './build.js';
import { CONFIGS, type MatrixConfig, VIRTUAL_SIZE } from './matrix.js';

type Subcommand = 'info' | 'map' | 'check' | 'measure';

/** The qemu-img argument lists to compare for one built configuration, by subcommand. */
function commandsFor(cfg: MatrixConfig, built: BuiltImage): Record<Subcommand, string[][]> {
  const cmds: Record<Subcommand, string[][]> = { info: [], map: [], check: [], measure: [] };
  for (const layer of built.layers) {
    cmds.info.push(['info', '--output=json', layer]);
    cmds.map.push(['map', '--output=json', layer]);
    cmds.check.push(['check', '--output=json', layer]);
    cmds.measure.push(['measure', '--output=json', '-O', 'qcow2', layer]);
  }
  if (built.layers.length > 1) cmds.info.push(['info', '--output=json', '--backing-chain', built.image]);
  cmds.measure.push(['measure', '--output=json', '-O', 'raw', built.image]);
  const opts = cfg.options ? ['-o', cfg.options] : [];
  cmds.measure.push(['measure', '--output=json', '--size', String(VIRTUAL_SIZE * 128), '-O', 'qcow2', ...opts]);
  return cmds;
}

async function compareJson(args: string[]): Promise<string | null> {
  const q = await qemuImg(args);
  const t = await tsemu(['img', ...args]);
  const what = `img ${args.join(' ')}`;
  if (t.code !== q.code) return `${what}: tsemu exits ${t.code}, qemu-img ${q.code}\ntsemu stderr: ${t.stderr}\nqemu-img stderr: ${q.stderr}`;
  let tj: unknown;
  try {
    tj = JSON.parse(t.stdout);
  } catch {
    return `${what}: tsemu printed no JSON:\n${t.stdout}${t.stderr}`;
  }
  try {
    assert.deepStrictEqual(tj, JSON.parse(q.stdout));
  } catch (e) {
    return `${what}: JSON differs from qemu-img's\n${(e as Error).message}`;
  }
  return null;
}

for (const [who, build] of [
  ['qemu-made', buildWithQemu],
  ['tsemu-made', buildWithTsemu],
] as const) {
  for (const cfg of CONFIGS) {
    test(`JSON output equals qemu-img's: ${who} ${cfg.name}`, async (t) => {
      const { dir, cleanup } = await scratchDir();
      try {
        const built = await build(cfg, dir);
        for (const [sub, list] of Object.entries(commandsFor(cfg, built))) {
          await t.test(`img ${sub}`, async () => {
            const problems: string[] = [];
            for (const args of list) {
              const p = await compareJson(args);
              if (p) problems.push(p);
            }
            assert.equal(problems.length, 0, problems.join('\n\n'));
          });
        }
      } finally {
        await cleanup();
      }
    });
  }
}
