/**
 * convert's error messages against qemu-img 7.2's: a source that cannot be
 * opened gets "Could not open 'NAME': " (a missing file, an unreachable URL, the
 * wrong format), a -n target too, and a target that cannot be created is named
 * once ("T: error while converting FMT: Could not create 'T': …", never the
 * hidden work name). Nothing is left behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { freePort } from '../nbd/support.js';
import { requirePeer, runProgram, scratchDir, tsemu } from '../helpers/peers.js';

requirePeer('qemu-img');

const message = (stderr: string) => stderr.replace(/^(tsemu|qemu-img): /, '').trim();

test('convert open and create errors read as qemu-img\'s', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    await runProgram('qemu-img', ['create', '-q', '-f', 'qcow2', 'a.qcow2', '1M'], { cwd: dir });
    for (const args of [
      ['convert', '-O', 'qcow2', 'missing.qcow2', 'out.qcow2'],
      ['convert', '-O', 'raw', 'a.qcow2', 'missing.qcow2', 'out.raw'],
      ['convert', '-O', 'qcow2', 'a.qcow2', 'no-such-folder/out.qcow2'],
      ['convert', '-O', 'raw', 'a.qcow2', 'no-such-folder/out.raw'],
      ['convert', '-n', '-O', 'raw', 'a.qcow2', 'missing.raw'],
    ]) {
      const [q, t] = await Promise.all([runProgram('qemu-img', args, { cwd: dir }), tsemu(['img', ...args], { cwd: dir })]);
      assert.equal(message(t.stderr), message(q.stderr), args.join(' '));
      assert.equal(t.code, q.code, args.join(' '));
    }
    // An unreachable URL: the prefix names it (the reason is the HTTP client's own words).
    const url = `http://127.0.0.1:${await freePort()}/x.raw`;
    const r = await tsemu(['img', 'convert', '-O', 'raw', url, 'out.raw'], { cwd: dir });
    assert.equal(r.code, 1);
    assert.match(message(r.stderr), new RegExp(`^Could not open '${url.replace(/[.]/g, '\\.')}': HTTP: Error opening file: connection refused`));
    assert.deepEqual(await readdir(dir), ['a.qcow2']);
  } finally {
    await cleanup();
  }
});
