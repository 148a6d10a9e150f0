/** QEMU's NBD URI forms as the nbd protocol driver reads them, and the ones it refuses. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isNbdUri, parseNbdUri } from '../../src/block/nbd/uri.js';

test('nbd://, nbd+tcp:// and nbd+unix:// name an address and an export', () => {
  assert.deepEqual(parseNbdUri('nbd://127.0.0.1:10999'), { address: { host: '127.0.0.1', port: 10999 }, exportName: '' });
  assert.deepEqual(parseNbdUri('nbd://example/'), { address: { host: 'example', port: 10809 }, exportName: '' });
  assert.deepEqual(parseNbdUri('nbd://[::1]:1234/a%20b'), { address: { host: '::1', port: 1234 }, exportName: 'a b' });
  assert.deepEqual(parseNbdUri('nbd+tcp://h:1/x/y'), { address: { host: 'h', port: 1 }, exportName: 'x/y' });
  assert.deepEqual(parseNbdUri('nbd+unix:///e?socket=/tmp/s'), { address: { path: '/tmp/s' }, exportName: 'e' });
  assert.ok(isNbdUri('NBD+UNIX:///e?socket=/s'));
  assert.ok(!isNbdUri('nbd.qcow2'));
  assert.ok(!isNbdUri('https://host/nbd'));
});

test('malformed NBD URIs are refused with a reason', () => {
  assert.throws(() => parseNbdUri('nbd://'), /no host/);
  assert.throws(() => parseNbdUri('nbd://h:99999/'), /Invalid NBD URI/);
  assert.throws(() => parseNbdUri('nbd+unix:///e'), /needs exactly one \?socket=PATH/);
  assert.throws(() => parseNbdUri('nbd+unix://host/e?socket=/s'), /takes no host/);
  assert.throws(() => parseNbdUri('nbd://h/?x=1'), /unexpected query parameters/);
  assert.throws(() => parseNbdUri('nbd://h/%zz'), /percent-encoding/);
});
