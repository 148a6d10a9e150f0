/**
 * The name `img info` shows for an image over HTTP, checked against qemu-img on
 * the same names: a json: name with only defaults, readahead or timeout becomes
 * the plain URL; one with options a URL cannot carry is re-serialised in
 * qemu-img's order and spelling; a protocol-only name keeps the protocol as its
 * format; raw over HTTP has no dirty flag.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { mustRun, qemuImg, requirePeer, scratchDir, tsemu } from '../helpers/peers.js';
import { startRangeServer, type RangeServer } from './range-server.js';

let dir = '';
let cleanup = async () => {};
let server: RangeServer;

before(async () => {
  requirePeer('qemu-img');
  ({ dir, cleanup } = await scratchDir());
  await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', path.join(dir, 'a.qcow2'), '1M']), 'create qcow2');
  await mustRun(qemuImg(['create', '-q', '-f', 'raw', path.join(dir, 'r.raw'), '1M']), 'create raw');
  server = await startRangeServer({ root: dir });
});

after(async () => {
  await server.close();
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
