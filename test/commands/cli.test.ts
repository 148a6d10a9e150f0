import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tsemu } from '../helpers/peers.js';

test('tsemu --help lists the img topic', async () => {
  const r = await tsemu(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /img/);
});

test('a wrong flag is a clear error with a non-zero exit', async () => {
  const r = await tsemu(['img', 'create', '--no-such-flag', 'x.img', '1M']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /no-such-flag/);
});
