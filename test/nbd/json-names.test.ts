/**
 * NBD names beyond URIs: `json:{"file.driver":"nbd","file.server.host":…}` and a
 * top-level `{"driver":"nbd",…}` with QEMU's option spellings (server.type, host,
 * port, path, export) open the export; `img info` names the image as qemu-img
 * does (the canonical nbd:// URI, port written, no trailing slash; format "nbd"
 * for a protocol-only name) and shows no dirty flag for raw on NBD. Unknown or
 * contradictory options are errors naming them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { qemuImg, scratchDir, tsemu } from '../helpers/peers.js';
import { HOST, makeImage, serveOnLoopback, startQemuNbd } from './support.js';
import { parseNbdTarget } from '../../src/block/nbd/target.js';

const json = (o: object) => `json:${JSON.stringify(o)}`;

test('info on nbd names prints what qemu-img prints (inet and unix, json: and URIs)', async (t) => {
  const { dir, cleanup } = await scratchDir();
  t.after(cleanup);
  const image = await makeImage(dir);
  const { port } = await serveOnLoopback(t, 'qemu-nbd', ['-f', 'qcow2', '-t', '-e', '4', '-r', image], dir);
  const socket = path.join(dir, 'nbd.sock');
  const unix = await startQemuNbd(['-k', socket, '-x', 'exp', '-t', '-e', '4', '-r', image], dir);
  t.after(() => unix.stop());
  const names = [
    `nbd://${HOST}:${port}/`,
    json({ 'file.driver': 'nbd', 'file.server.type': 'inet', 'file.server.host': HOST, 'file.server.port': String(port) }),
    json({ driver: 'raw', file: { driver: 'nbd', server: { type: 'inet', host: HOST, port } } }),
    json({ driver: 'nbd', server: { type: 'unix', path: socket }, export: 'exp' }),
    `nbd+unix:///exp?socket=${socket}`,
  ];
  for (const name of names) {
    for (const output of [['--output=json'], []]) {
      const [q, ours] = await Promise.all([qemuImg(['info', '-U', ...output, name]), tsemu(['img', 'info', '-U', ...output, name])]);
      assert.equal(ours.code, 0, ours.stderr);
      assert.equal(ours.stdout, q.stdout, `${name}: ${q.stderr}`);
    }
  }
  const converted = path.join(dir, 'copy.qcow2');
  const c = await tsemu(['img', 'convert', '-O', 'qcow2', names[1]!, converted]);
  assert.equal(c.code, 0, c.stderr);
  assert.equal((await qemuImg(['compare', '-f', 'qcow2', '-F', 'qcow2', image, converted])).code, 0);
});

test('nbd json: options: defaults, and errors that name the option', () => {
  assert.deepEqual(parseNbdTarget(json({ driver: 'nbd', server: { type: 'inet', host: 'h', port: 7 } })), { address: { host: 'h', port: 7 }, exportName: '' });
  assert.deepEqual(parseNbdTarget(json({ driver: 'nbd', server: { type: 'unix', path: '/s' }, export: 'e' })), { address: { path: '/s' }, exportName: 'e' });
  assert.deepEqual(parseNbdTarget(json({ driver: 'nbd', filename: 'nbd://h:1/x' })), { address: { host: 'h', port: 1 }, exportName: 'x' });
  const inet = { type: 'inet', host: 'h', port: '1' };
  assert.throws(() => parseNbdTarget(json({ driver: 'nbd', server: inet, 'tls-creds': 'x' })), /doesn't support the option 'tls-creds'/);
  assert.throws(() => parseNbdTarget(json({ driver: 'nbd', server: { ...inet, type: 'vsock' } })), /'server.type' does not accept value 'vsock'/);
  assert.throws(() => parseNbdTarget(json({ driver: 'nbd', server: { ...inet, port: '99999' } })), /'server.port' expects a port number/);
  // qemu-img 7.2's messages for the missing ones.
  assert.throws(() => parseNbdTarget(json({ driver: 'nbd' })), /^Error: NBD server address missing$/);
  assert.throws(() => parseNbdTarget(json({ driver: 'nbd', server: { host: 'h', port: '1' } })), /^Error: Parameter 'type' is missing$/);
  assert.throws(() => parseNbdTarget(json({ driver: 'nbd', server: { type: 'inet', host: 'h' } })), /^Error: Parameter 'port' is missing$/);
  assert.throws(() => parseNbdTarget(json({ driver: 'nbd', server: { type: 'inet', port: '1' } })), /^Error: Parameter 'host' is missing$/);
  assert.throws(() => parseNbdTarget(json({ driver: 'nbd', server: { type: 'unix' } })), /^Error: Parameter 'path' is missing$/);
  assert.throws(() => parseNbdTarget(json({ driver: 'nbd', filename: 'nbd://h/', export: 'x' })), /No 'export' is allowed/);
});
