/**
 * img commands on HTTP images, checked against qemu-img on the same names.
 * The name `img info` shows: a json: name with only defaults, readahead or
 * timeout becomes the plain URL; one with options a URL cannot carry is
 * re-serialised in qemu-img's order and spelling; a protocol-only name keeps the
 * protocol as its format; raw over HTTP has no dirty flag. --object on every img
 * command that opens images: the read-only ones (map, check, measure, dd, bench)
 * reach a server that demands basic authentication with the password from
 * `--object secret`, and all ten refuse a bad object definition with qemu-img's
 * error before opening anything.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { mustRun, qemuImg, qemuIo, requirePeer, scratchDir, tsemu } from '../helpers/peers.js';
import { startRangeServer, type RangeServer } from './range-server.js';

let dir = '';
let cleanup = async () => {};
let server: RangeServer;
let authServer: RangeServer;

before(async () => {
  requirePeer('qemu-img');
  ({ dir, cleanup } = await scratchDir());
  await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', path.join(dir, 'a.qcow2'), '1M']), 'create qcow2');
  await mustRun(qemuIo(['-c', 'write -P 0x5a 0 64k', path.join(dir, 'a.qcow2')]), 'write');
  await mustRun(qemuImg(['create', '-q', '-f', 'raw', path.join(dir, 'r.raw'), '1M']), 'create raw');
  server = await startRangeServer({ root: dir });
  authServer = await startRangeServer({ root: dir, authorization: `Basic ${Buffer.from('alice:s3cret').toString('base64')}` });
});

after(async () => {
  await server.close();
  await authServer.close();
  await cleanup();
});

test('info on http json: names shows the name and keys qemu-img shows', async () => {
  const qcow2 = `${server.base}/a.qcow2`;
  const raw = `${server.base}/r.raw`;
  const json = (o: object) => `json:${JSON.stringify(o)}`;
  const names = [
    raw,
    json({ 'file.driver': 'http', 'file.url': qcow2 }),
    json({ driver: 'qcow2', file: { driver: 'http', url: qcow2, readahead: 65536, timeout: 10, sslverify: true } }),
    json({ 'file.driver': 'http', 'file.url': qcow2, 'file.cookie': 'x=1', 'file.sslverify': false, 'file.username': 'u', 'file.timeout': 7 }),
    json({ 'file.driver': 'http', 'file.url': qcow2, 'file.password-secret': 's0', 'file.cookie-secret': 's0' }),
    json({ driver: 'raw', 'file.driver': 'http', 'file.url': raw, 'file.cookie': 'c=1' }),
    json({ driver: 'http', url: raw }),
    json({ driver: 'http', url: raw, cookie: 'a=1' }),
  ];
  const object = ['--object', 'secret,id=s0,data=pw'];
  for (const name of names) {
    for (const output of [['--output=json'], []]) {
      const [q, ours] = await Promise.all([qemuImg(['info', ...object, ...output, name]), tsemu(['img', 'info', ...object, ...output, name])]);
      assert.equal(q.code, 0, q.stderr);
      assert.equal(ours.stdout, q.stdout, name);
    }
  }
});

test('map, check, measure, dd and bench read an authenticated URL with the password from --object secret', async () => {
  const name = `json:${JSON.stringify({ driver: 'qcow2', file: { driver: 'http', url: `${authServer.base}/a.qcow2`, username: 'alice', 'password-secret': 'pw' } })}`;
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
  const file = path.join(dir, 'a.qcow2');
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
