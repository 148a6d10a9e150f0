import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { mustRun, requirePeer, scratchDir } from '../helpers/peers.js';
import { qemuImgIn, tsemuIn, errorText } from './ops-images.js';
import { createOptionsHelp, formattingLine, isOptionsHelp, validateCreateOptions, creationOptions } from '../../src/block/ops/create.js';
import { getFormat } from '../../src/block/formats/index.js';

let dir = '';
let cleanup = async () => {};

before(async () => {
  requirePeer('qemu-img');
  ({ dir, cleanup } = await scratchDir());
  await mustRun(qemuImgIn(dir, ['create', '-q', '-f', 'qcow2', 'base.qcow2', '3M']), 'create base');
  await mustRun(qemuImgIn(dir, ['create', '-q', '-f', 'raw', 'base.raw', '2M']), 'create base raw');
});
after(() => cleanup());

const trimmedErrorText = (stderr: string) => errorText(stderr).trimEnd();

/** Runs `img create ARGS` with both tools (each on its own target name) and compares everything. */
async function sameAsQemu(args: string[]): Promise<void> {
  const target = args.find((a) => a.startsWith('new'));
  const swap = (who: string) => args.map((a) => (a === target ? `${who}-${a}` : a));
  const [q, t] = await Promise.all([qemuImgIn(dir, ['create', ...swap('q')]), tsemuIn(dir, ['img', 'create', ...swap('t')])]);
  const what = args.join(' ');
  assert.equal(t.stdout.replaceAll("'t-new", "'new"), q.stdout.replaceAll("'q-new", "'new"), what);
  assert.equal(trimmedErrorText(t.stderr).replaceAll('t-new', 'new'), trimmedErrorText(q.stderr).replaceAll('q-new', 'new'), what);
  assert.equal(t.code, q.code, what);
  if (target && q.code === 0) {
    const [qs, ts] = await Promise.all([stat(path.join(dir, `q-${target}`)), stat(path.join(dir, `t-${target}`))]);
    if (target.endsWith('.raw')) assert.equal(ts.size, qs.size, what);
    const [qi, ti] = await Promise.all([
      qemuImgIn(dir, ['info', '--output=json', `q-${target}`]),
      qemuImgIn(dir, ['info', '--output=json', `t-${target}`]),
    ]);
    const strip = (s: string) => {
      const o = JSON.parse(s) as Record<string, unknown>;
      delete o.filename;
      delete o['actual-size'];
      return o;
    };
    assert.deepEqual(strip(ti.stdout), strip(qi.stdout), what);
  }
  if (target) {
    await rm(path.join(dir, `q-${target}`), { force: true });
    await rm(path.join(dir, `t-${target}`), { force: true });
  }
}

test('raw: Formatting line, sizes, options and errors as qemu-img create', async () => {
  for (const args of [
    ['-f', 'raw', 'new.raw', '1M'],
    ['-f', 'raw', 'new.raw', '1000'],
    ['-q', '-f', 'raw', 'new.raw', '1M'],
    ['-f', 'raw', '-o', 'nocow=on,extent_size_hint=1M,size=1M', 'new.raw'],
    ['-f', 'raw', 'new.raw', '1Q'],
    ['-f', 'foo', 'new.raw', '1M'],
    ['-f', 'raw', 'new.raw'],
    ['-f', 'raw', '-b', 'base.raw', '-F', 'raw', 'new.raw', '1M'],
    ['-f', 'raw', '-o', 'size=1M', 'new.raw', '1M'],
    ['-f', 'raw', '-o', 'foo=1', 'new.raw', '1M'],
    ['-f', 'raw', '-o', 'nocow=maybe', 'new.raw', '1M'],
    ['-f', 'raw', '-o', 'extent_size_hint=xx', 'new.raw', '1M'],
  ]) {
    await sameAsQemu(args);
  }
});

test('-o help / -o ? list the options as qemu-img prints them', async () => {
  for (const args of [
    ['-f', 'qcow2', '-o', 'help'],
    ['-f', 'qcow2', '-o', '?'],
    ['-f', 'qcow2', '-o', 'help', 'x.qcow2'],
    ['-f', 'raw', '-o', 'help', 'x.raw'],
    ['-f', 'qcow2', '-o', 'cluster_size=4k,help', 'x.qcow2', '1M'],
  ]) {
    await sameAsQemu(args);
  }
  assert.ok(isOptionsHelp(['size=1M', 'help']));
  assert.ok(!isOptionsHelp(['size=1M']));
  assert.match(createOptionsHelp('qcow2'), /^Supported qcow2 options:\n {2}backing_file=<str> {5}- File name of a base image\n/);
});

test('qcow2: backing file checks and errors as qemu-img create', async () => {
  for (const args of [
    ['-f', 'qcow2', '-b', 'nonexistent.qcow2', '-F', 'qcow2', 'new.qcow2'],
    ['-f', 'qcow2', '-u', '-b', 'nonexistent.qcow2', 'new.qcow2', '1M'],
    ['-f', 'qcow2', '-b', 'base.raw', '-F', 'qcow2', 'new.qcow2'],
    ['-f', 'qcow2', 'new.qcow2'],
  ]) {
    await sameAsQemu(args);
  }
  const noFormat = await tsemuIn(dir, ['img', 'create', '-f', 'qcow2', '-b', 'base.qcow2', 'nf.qcow2']);
  assert.equal(noFormat.code, 1);
  assert.match(noFormat.stderr, /Backing file specified without backing format\nDetected format of qcow2\./);
});

test(
  'qcow2: Formatting lines list options in qemu-img\'s order',
  async () => {
    for (const args of [
      ['-f', 'qcow2', 'new.qcow2', '1M'],
      ['-f', 'qcow2', '-o', 'compat=0.10', 'new.qcow2', '1M'],
      ['-f', 'qcow2', '-o', 'compat=v3,preallocation=metadata,lazy_refcounts=on,cluster_size=4k,refcount_bits=8', 'new.qcow2', '1M'],
      ['-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', 'new.qcow2'],
      ['-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', 'new.qcow2', '4M'],
      ['-f', 'qcow2', '-o', 'extended_l2=on,compression_type=zstd', 'new.qcow2', '1M'],
      ['-f', 'qcow2', '-o', 'cluster_size=3000', 'new.qcow2', '1M'],
    ]) {
      await sameAsQemu(args);
    }
  },
);

test('raw: preallocation is the protocol\'s option, printed where qemu-img prints it', async () => {
  for (const args of [
    ['-f', 'raw', '-o', 'preallocation=falloc', 'new.raw', '1M'],
    ['-f', 'raw', '-o', 'nocow=on,extent_size_hint=64k,preallocation=full', 'new.raw', '1M'],
    ['-f', 'raw', '-o', 'preallocation=metadata', 'new.raw', '1M'],
    ['-f', 'raw', '-o', 'preallocation=bogus', 'new.raw', '1M'],
    ['-f', 'raw', '-o', 'help'],
  ]) {
    await sameAsQemu(args);
  }
});

test('the Formatting line prints given and default values in list order', () => {
  const raw = getFormat('raw');
  const line = formattingLine('a b', raw, new Map([['nocow', 'on'], ['extent_size_hint', '64k']]), 1024);
  assert.match(line, /^Formatting 'a b', fmt=raw size=1024 nocow=on extent_size_hint=65536$/);
  const names = creationOptions(raw).map((o) => o.name);
  assert.deepEqual(names, ['size', 'nocow', 'preallocation', 'extent_size_hint']);
  assert.throws(() => validateCreateOptions(new Map([['bogus', '1']]), creationOptions(raw)), /Invalid parameter 'bogus'/);
});
