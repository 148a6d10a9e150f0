/**
 * The table of format drivers, and format probing: every driver scores the
 * file's first bytes and the highest score wins (raw always scores 1, so it is
 * the fallback, as in QEMU).
 */
import type { FormatDriver } from './format.js';
import { rawFormat } from './raw.js';
import { qcow2Format } from './qcow2/driver.js';
import { vdiFormat } from './vdi/driver.js';
import { vmdkFormat } from './vmdk/driver.js';
import { vpcFormat } from './vpc/driver.js';
import { ovaFormat } from './ova/driver.js';
import { vhdxFormat } from './vhdx/driver.js';

const FORMATS: readonly FormatDriver[] = [rawFormat, qcow2Format, vdiFormat, vmdkFormat, vpcFormat, vhdxFormat, ovaFormat(probeFormat)];

export function getFormat(name: string): FormatDriver {
  const f = FORMATS.find((d) => d.name === name);
  if (!f) throw new Error(`Unknown file format '${name}'`);
  return f;
}

export function probeFormat(header: Uint8Array, filename: string): FormatDriver {
  let best = rawFormat;
  let bestScore = 0;
  for (const f of FORMATS) {
    const score = f.probe(header, filename);
    if (score > bestScore) {
      best = f;
      bestScore = score;
    }
  }
  return best;
}
