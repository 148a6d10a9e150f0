/**
 * The project's x86 test guest (fixtures/x86-guest) built for a test file with
 * the host's gcc and binutils into a scratch folder: the bzImage's path and the
 * cleanup that removes the folder. Fails (requirePeer) when the tools are missing.
 * x86GuestForTests() does it around a test file's tests (before/after hooks).
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { after, before } from 'node:test';
import { ROOT, requirePeer, scratchDir } from '../helpers/peers.js';

export async function buildX86Guest(): Promise<{ bzImage: string; cleanup: () => Promise<void> }> {
  for (const tool of ['gcc', 'ld', 'objcopy', 'nm']) requirePeer(tool);
  const scratch = await scratchDir();
  const out = path.join(scratch.dir, 'x86-guest');
  execFileSync(path.join(ROOT, 'fixtures/x86-guest/build.sh'), [out], { stdio: 'pipe' });
  return { bzImage: path.join(out, 'bzImage'), cleanup: scratch.cleanup };
}

/** Builds the guest before the calling file's tests and removes it after them; returns the bzImage's path getter. */
export function x86GuestForTests(): () => string {
  let bzImage = '';
  let cleanup: () => Promise<void> = async () => {};
  before(async () => {
    const guest = await buildX86Guest();
    cleanup = guest.cleanup;
    bzImage = guest.bzImage;
  });
  after(() => cleanup());
  return () => bzImage;
}
