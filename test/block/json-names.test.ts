/**
 * json: names in the commands that open an image file themselves: `img check`
 * takes `json:{"driver":…,"file.filename":…}` as qemu-img 7.2 does (same lines,
 * same JSON, same error for an option no driver takes).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requirePeer, runProgram, scratchDir, tsemu } from '../helpers/peers.js';

requirePeer('qemu-img');

test('check json:{...}: same output and exit code as qemu-img', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    await runProgram('qemu-img', ['create', '-q', '-f', 'qcow2', 'a.qcow2', '1M'], { cwd: dir });
    for (const args of [
      ['check', 'json:{"driver":"qcow2","file.filename":"a.qcow2"}'],
      ['check', '--output=json', 'json:{"driver":"qcow2","file":{"driver":"file","filename":"a.qcow2"}}'],
      ['check', 'json:{"file.filename":"a.qcow2"}'],
      ['check', 'json:{"driver":"qcow2","file.filename":"a.qcow2","foo":1}'],
    ]) {
      const [q, t] = await Promise.all([runProgram('qemu-img', args, { cwd: dir }), tsemu(['img', ...args], { cwd: dir })]);
      assert.equal(t.stdout, q.stdout, args.join(' '));
      assert.equal(t.stderr.replace(/^tsemu: /, ''), q.stderr.replace(/^qemu-img: /, ''), args.join(' '));
      assert.equal(t.code, q.code, args.join(' '));
    }
  } finally {
    await cleanup();
  }
});
