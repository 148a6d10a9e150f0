/**
 * The start-up machinery keeps every command working: the lazy command table
 * names every command module, each entry loads its real class, the manifest the
 * build writes lists exactly the table's commands, and the built CLI prints
 * each command's help (with all of its flags) and runs commands from the bundle.
 * An img command loads koffi's native module directly, not through koffi's
 * package loader (src/util/libc.ts), and none of the built-ins or separate bundle
 * files that only other commands, formats or protocols need. oclif's command order, patched at build
 * time to compare ids by code unit (scripts/oclif-patches.js), is the order
 * localeCompare gave. The bundle is ASCII (bin/tsemu.js reads it as latin1).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { COMMANDS } from '../../src/commands/index.js';
import { ROOT, runProgram, scratchDir, TSEMU_BIN, tsemu } from '../helpers/peers.js';

/** Command ids the source tree defines: one per module under src/commands/ but base.ts and index.ts. */
async function commandModuleIds(): Promise<string[]> {
  const dir = path.join(ROOT, 'src/commands');
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)).replace(/\.ts$/, ''))
    .filter((rel) => rel !== 'base' && rel !== 'index')
    .map((rel) => rel.split(path.sep).join(':'))
    .sort();
}

test('every command module under src/commands/ is registered in the command table', async () => {
  assert.deepEqual(Object.keys(COMMANDS).sort(), await commandModuleIds());
});

test('every table entry loads a command class', async () => {
  for (const [id, entry] of Object.entries(COMMANDS)) {
    const real = await entry.load();
    assert.equal(typeof real.run, 'function', `${id}: no run()`);
    assert.equal(typeof real.flags, 'object', `${id}: no flags`);
  }
});

test('command ids sort the same by code unit as by localeCompare (the order the bundle gives oclif)', () => {
  const ids = Object.keys(COMMANDS);
  const byCodeUnit = [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  assert.deepEqual(byCodeUnit, [...ids].sort((a, b) => a.localeCompare(b)));
});

test('the built bundle is ASCII, so the launcher\'s latin1 read of it is its exact text', async () => {
  const bytes = await readFile(path.join(ROOT, 'dist/bundle/cli.cjs'));
  assert.equal(bytes.findIndex((b) => b > 0x7f), -1);
});

test('the built manifest lists exactly the table\'s commands', async () => {
  const manifest = JSON.parse(await readFile(path.join(ROOT, 'dist/bundle/oclif.manifest.json'), 'utf8')) as {
    commands: Record<string, { flags: Record<string, unknown> }>;
  };
  assert.deepEqual(Object.keys(manifest.commands).sort(), Object.keys(COMMANDS).sort());
  for (const [id, entry] of Object.entries(COMMANDS)) {
    const real = await entry.load();
    assert.deepEqual(Object.keys(manifest.commands[id]!.flags).sort(), Object.keys(real.flags ?? {}).sort(), id);
  }
});

test('the built CLI prints every command\'s help with all of its flags', async () => {
  for (const [id, entry] of Object.entries(COMMANDS)) {
    const words = id.split(':');
    const r = await tsemu([...words, '--help']);
    assert.equal(r.code, 0, `${id}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`\\$ tsemu ${words.join(' ')}\\b`), id);
    const real = await entry.load();
    for (const name of Object.keys(real.flags ?? {})) {
      assert.ok(r.stdout.includes(`--${name}`), `${id} --help does not list --${name}`);
    }
  }
});

test('the built CLI lists the img topic and its commands', async () => {
  const top = await tsemu(['--help']);
  assert.equal(top.code, 0);
  assert.match(top.stdout, /^ {2}img\b/m);
  assert.match(top.stdout, /^ {2}io\b/m);
  const img = await tsemu(['img']);
  assert.equal(img.code, 0);
  for (const id of Object.keys(COMMANDS).filter((i) => i.startsWith('img:'))) {
    assert.match(img.stdout, new RegExp(`^ {2}img ${id.slice(4)}\\b`, 'm'), id);
  }
});

test('commands run from the bundle, compression workers included', async () => {
  const { dir, cleanup } = await scratchDir();
  try {
    const raw = path.join(dir, 'a.raw');
    const qcow2 = path.join(dir, 'a.qcow2');
    assert.equal((await tsemu(['img', 'create', '-f', 'raw', raw, '4M'])).code, 0);
    const io = await tsemu(['io', '-f', 'raw', '-c', 'write -P 0x5a 0 1M', raw]);
    assert.equal(io.code, 0, io.stderr);
    for (const type of ['zlib', 'zstd']) {
      const c = await tsemu(['img', 'convert', '-c', '-f', 'raw', '-O', 'qcow2', '-o', `compression_type=${type}`, raw, qcow2]);
      assert.equal(c.code, 0, c.stderr);
      const cmp = await tsemu(['img', 'compare', '-f', 'raw', '-F', 'qcow2', raw, qcow2]);
      assert.equal(cmp.code, 0, cmp.stdout + cmp.stderr);
    }
  } finally {
    await cleanup();
  }
});

/** Every module request (require) the built CLI makes while `img info` reads a fresh 1 MiB qcow2, in order. */
async function imgInfoModuleRequests(): Promise<string[]> {
  const { dir, cleanup } = await scratchDir();
  try {
    const image = path.join(dir, 'a.qcow2');
    assert.equal((await tsemu(['img', 'create', '-q', '-f', 'qcow2', image, '1M'])).code, 0);
    // Preloaded into the CLI's Node: prints every module request.
    const hook = path.join(dir, 'hook.cjs');
    await writeFile(
      hook,
      "const M = require('node:module'); const load = M._load;\n" +
        "M._load = function (request, ...rest) { process.stderr.write(`load ${request}\\n`); return load.call(this, request, ...rest); };\n",
    );
    const r = await runProgram(process.execPath, ['--require', hook, TSEMU_BIN, 'img', 'info', image]);
    assert.equal(r.code, 0, r.stderr);
    return r.stderr.split('\n').filter((l) => l.startsWith('load ')).map((l) => l.slice(5));
  } finally {
    await cleanup();
  }
}

test('img info takes its image locks through koffi\'s native module, not koffi\'s package loader', async () => {
  const requests = (await imgInfoModuleRequests()).filter((r) => /koffi/.test(r));
  assert.deepEqual(requests, [`@koromix/koffi-linux-${process.arch}/linux_${process.arch}/koffi.node`]);
});

test('img info loads none of the code only other commands, formats or protocols need', async () => {
  const requests = new Set((await imgInfoModuleRequests()).map((r) => r.replace(/^node:/, '')));
  // Compression, networking, worker threads, TLS and HTTP (undici), OVA archives, terminal probing.
  for (const unused of ['crypto', 'net', 'tls', 'http', 'zlib', 'worker_threads', 'tty', 'tar-stream', 'supports-color', './undici.cjs']) {
    assert.ok(!requests.has(unused), `img info loaded ${unused}: ${[...requests].join(' ')}`);
  }
});
