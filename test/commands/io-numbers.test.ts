import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cvtnum, cvtstr, formatFixed, timestr } from '../../src/io/numbers.js';
import { getopt } from '../../src/io/getopt.js';

test('cvtstr prints sizes like qemu-io (units, trimmed zeros, ties to even)', () => {
  assert.equal(cvtstr(0), '0 bytes');
  assert.equal(cvtstr(512), '512 bytes');
  assert.equal(cvtstr(987.21897), '987.218970 bytes');
  assert.equal(cvtstr(1536), '1.500 KiB');
  assert.equal(cvtstr(65536), '64 KiB');
  assert.equal(cvtstr(0x170000), '1.438 MiB');
  assert.equal(cvtstr(0x210000), '2.062 MiB', '2.0625 rounds to even like printf');
  assert.equal(cvtstr(512 * 2 ** 20), '512 MiB');
  assert.equal(cvtstr(3 * 2 ** 40), '3 TiB');
  assert.equal(formatFixed(2.0635, 3), '2.063');
});

test('cvtnum takes qemu-io sizes and words errors like it', () => {
  assert.equal(cvtnum('64k'), 65536);
  assert.equal(cvtnum('1.5k'), 1536);
  assert.equal(cvtnum('0x10'), 16);
  assert.equal(cvtnum('3G'), 3 * 2 ** 30);
  assert.equal(cvtnum('1.1k'), 1126);
  assert.equal(cvtnum('0x10k'), 16384);
  assert.equal(cvtnum('9P'), 9 * 2 ** 50);
  assert.throws(() => cvtnum('1k5'), /^Error: Parsing error: non-numeric argument, or extraneous\/unrecognized suffix -- 1k5$/);
  assert.throws(() => cvtnum('1.5'), /non-numeric argument/);
  assert.throws(() => cvtnum('8E'), /^Error: Parsing error: argument too large -- 8E$/);
  assert.throws(() => cvtnum('99999999999999999999'), /argument too large/);
});

test('timestr formats elapsed times', () => {
  assert.equal(timestr(0.013, false), '00.01');
  assert.equal(timestr(75.5, false), '01:15.50');
  assert.equal(timestr(0, true), '0:00:00.00');
});

test('getopt permutes like GNU getopt', () => {
  assert.deepEqual(getopt('read', ['0', '-qP', '0xab', '512'], 'P:q'), {
    options: [['q', ''], ['P', '0xab']],
    operands: ['0', '512'],
  });
  assert.deepEqual(getopt('read', ['-P5', '--', '-1', '2'], 'P:').operands, ['-1', '2']);
  assert.throws(() => getopt('read', ['0', '-5'], 'P:q'), /^Error: read: invalid option -- '5'$/);
  assert.throws(() => getopt('read', ['-P'], 'P:'), /option requires an argument -- 'P'/);
});
