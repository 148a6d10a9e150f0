import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseOptionString, parseSize } from '../../src/block/options.js';

test('sizes take QEMU suffixes', () => {
  assert.equal(parseSize('512'), 512);
  assert.equal(parseSize('64k'), 65536);
  assert.equal(parseSize('1.5G'), 1.5 * 2 ** 30);
  assert.equal(parseSize('2M'), 2 * 2 ** 20);
  assert.throws(() => parseSize('12q'), /Invalid size/);
  assert.throws(() => parseSize('1.0000001k'), /whole number/);
});

test('option strings unescape double commas', () => {
  const m = parseOptionString('cluster_size=64k,backing_file=a,,b,lazy_refcounts');
  assert.deepEqual([...m], [['cluster_size', '64k'], ['backing_file', 'a,b'], ['lazy_refcounts', 'on']]);
});
