/**
 * --object on every img command that opens images: the read-only ones (map,
 * check, measure, dd, bench) reach a server that demands basic authentication
 * with the password from `--object secret`, and every one of the ten refuses a
 * bad object definition with qemu-img's error before opening anything.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { mustRun, qemuImg, qemuIo, requirePeer, scratchDir, tsemu } from '../helpers/peers.js';
import { startRangeServer, type RangeServer } from './range-server.js';

let dir = '';
let cleanup = async () => {};
let server: RangeServer;

before(async () => {
  requirePeer('qemu-img');
  ({ dir, cleanup } = await scratchDir());
  await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', path.join(dir, 'disk.qcow2'), '1M']), 'create');
  await mustRun(qemuIo(['-c', 'write -P 0x5a 0 64k', path.join(dir, 'disk.qcow2')]), 'write');
  server = await startRangeServer({ root: dir, authorization: `Basic ${Buffer.from('alice:s3cret').toString('base64')}` });
});

after(async () => {
  await server.close();
  await cleanup();
});

test('map, check, measure, dd and bench read an authenticated URL with the password from --object secret', async () => {
  const name = `json:${JSON.stringify({ driver: 'qcow2', file: { driver: 'http', url: `${server.base}/disk.qcow2`, username: 'alice', 'password-secret': 'pw' } })}`;
  const object = ['--object', 'secret,id=pw,data=s3cret'];
  const out = path.join(dir, 'out.raw');
  for (const args of [
    ['map', ...object, name],
    ['check', ...object, name],
    ['measure', ...object, '-O', 'qcow2', name],
    ['dd', ...object, '-O', 'raw', `if=${name}`, `of=${out}`],
    ['bench', ...object, '-c', '4', name],
  ]) {
    const r = await tsemu(['img', ...args]);
    assert.equal(r.code, 0, `${args[0]}: ${r.stderr}`);
  }
  const denied = await tsemu(['img', 'map', name]);
  assert.match(denied.stderr, /No secret with id 'pw'/);
});

test('every command that opens images refuses a bad --object definition', async () => {
  const file = path.join(dir, 'disk.qcow2');
  for (const args of [
    ['map', file], ['check', file], ['measure', file], ['rebase', '-u', '-b', '', file], ['commit', file],
    ['amend', '-o', 'lazy_refcounts=on', file], ['dd', `if=${file}`, `of=${path.join(dir, 'x')}`], ['bench', file],
    ['snapshot', '-l', file], ['resize', file, '2M'],
  ]) {
    const r = await tsemu(['img', args[0]!, '--object', 'bogus,id=x', ...args.slice(1)]);
    assert.equal(r.code, 1, args[0]);
    assert.match(r.stderr, /Parameter 'qom-type' does not accept value 'bogus'/, args[0]);
  }
});
