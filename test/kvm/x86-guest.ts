/**
 * The project's x86 test guest (fixtures/x86-guest) built for a test file with
 * the host's gcc and binutils into a scratch folder: the bzImage's path and the
 * cleanup that removes the folder. Fails (requirePeer) when the tools are missing.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { ROOT, requirePeer, scratchDir } from '../helpers/peers.js';

export async function buildX86Guest(): Promise<{ bzImage: string; cleanup: () => Promise<void> }> {
  for (const tool of ['gcc', 'ld', 'objcopy', 'nm']) requirePeer(tool);
  const scratch = await scratchDir();
  const out = path.join(scratch.dir, 'x86-guest');
  execFileSync(path.join(ROOT, 'fixtures/x86-guest/build.sh'), [out], { stdio: 'pipe' });
  return { bzImage: path.join(out, 'bzImage'), cleanup: scratch.cleanup };
}
