/**
 * The http and https protocols against servers this test starts on 127.0.0.1
 * (range-server.ts): tsemu img info/map/convert/compare on URLs, checked against
 * qemu-img (its curl driver, qemu-block-extra) on the same URLs and local files;
 * a server without range support; one that cuts connections; TLS with a
 * self-signed certificate made by openssl; cookie and basic authentication seen
 * by the server; json: pseudo-filenames and --object secret; read-only refusals.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { mustRun, qemuImg, qemuIo, requirePeer, runProgram, scratchDir, tsemu } from '../helpers/peers.js';
import { sha256File } from '../helpers/pattern.js';
import { startRangeServer, type RangeServer } from './range-server.js';
import { parseHttpOptions } from '../../src/block/protocols/http-options.js';
import { splitJsonFilename } from '../../src/block/json-filename.js';
import { ReadaheadCache } from '../../src/block/protocols/http-readahead.js';
import { closeImage, openImage } from '../../src/block/open.js';
import { defineSecret, lookupSecret, removeSecret } from '../../src/block/secrets.js';
import { defineObjects } from '../../src/cli/objects.js';

let dir = '';
let cleanup = async () => {};
let tls = { key: '', cert: '' };
const servers: RangeServer[] = [];

async function serve(opts: Omit<Parameters<typeof startRangeServer>[0], 'root'> = {}): Promise<RangeServer> {
  const s = await startRangeServer({ root: dir, ...opts });
  servers.push(s);
  return s;
}

before(async () => {
  requirePeer('qemu-img');
  requirePeer('openssl');
  const help = await qemuImg(['--help']);
  if (!/Supported formats:.* https\b/.test(help.stdout)) {
    throw new Error("qemu-img has no curl block driver (http, https): .ci/run must install qemu-block-extra");
  }
  ({ dir, cleanup } = await scratchDir());
  const img = (name: string) => path.join(dir, name);
  // base: data in three places; overlay (relative backing name) changes one of them.
  await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', img('base.qcow2'), '4M']), 'create base');
  for (const cmd of ['write -P 0x11 0 300k', 'write -P 0x22 1M 64k', 'write -P 0x33 3M 700k']) {
    await mustRun(qemuIo(['-c', cmd, img('base.qcow2')]), cmd);
  }
  await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', img('overlay.qcow2')]), 'create overlay');
  await mustRun(qemuIo(['-c', 'write -P 0x44 1M 4k', img('overlay.qcow2')]), 'write overlay');
  await mustRun(
    runProgram('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', img('key.pem'), '-out', img('cert.pem'),
      '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']),
    'openssl req',
  );
  tls = { key: await readFile(img('key.pem'), 'utf8'), cert: await readFile(img('cert.pem'), 'utf8') };
});

after(async () => {
  for (const s of servers) await s.close();
  await cleanup();
});

const json = (o: object) => `json:${JSON.stringify(o)}`;

test('info over HTTP prints what qemu-img prints for the same URL (disk size unavailable)', async () => {
  const s = await serve();
  const url = `${s.base}/base.qcow2`;
  const ours = await mustRun(tsemu(['img', 'info', '--output=json', url]), 'tsemu img info');
  const theirs = await mustRun(qemuImg(['info', '--output=json', url]), 'qemu-img info');
  assert.equal(ours.stdout, theirs.stdout);
  assert.ok(!ours.stdout.includes('actual-size'));
  const human = await mustRun(tsemu(['img', 'info', url]), 'tsemu img info');
  assert.equal(human.stdout, (await mustRun(qemuImg(['info', url]), 'qemu-img info')).stdout);
  assert.match(human.stdout, /^disk size: unavailable$/m);
  assert.ok(s.requests.some((r) => r.method === 'HEAD'), 'size from a HEAD request');
  assert.ok(s.requests.every((r) => r.method === 'HEAD' || /^bytes=\d+-\d+$/.test(String(r.headers.range))), 'only range GETs');
});

test('the range requests of one img info reuse keep-alive connections', async () => {
  const s = await serve();
  const name = json({ 'file.driver': 'http', 'file.url': `${s.base}/base.qcow2`, 'file.readahead': 0 });
  await mustRun(tsemu(['img', 'info', name]), 'tsemu img info');
  const gets = s.requests.filter((r) => r.method === 'GET').length;
  assert.ok(gets >= 2, `${gets} GET requests`);
  // undici does not reuse the connection of a HEAD request; later GETs reuse theirs.
  assert.ok(s.connections < s.requests.length, `${s.requests.length} requests on ${s.connections} connections`);
});

test('convert of a qcow2 overlay (relative backing file on the same server) equals qemu-img\'s convert of the local file; map and compare agree', async () => {
  const s = await serve();
  const url = `${s.base}/overlay.qcow2`;
  const ours = path.join(dir, 'ours.raw');
  const theirs = path.join(dir, 'theirs.raw');
  await mustRun(tsemu(['img', 'convert', '-O', 'raw', url, ours]), 'tsemu convert');
  await mustRun(qemuImg(['convert', '-O', 'raw', path.join(dir, 'overlay.qcow2'), theirs]), 'qemu-img convert');
  assert.equal(await sha256File(ours), await sha256File(theirs));
  assert.ok(s.requests.some((r) => r.path === '/base.qcow2'), 'the backing file came over HTTP too');
  const map = await mustRun(tsemu(['img', 'map', '--output=json', url]), 'tsemu map');
  assert.equal(map.stdout, (await mustRun(qemuImg(['map', '--output=json', url]), 'qemu-img map')).stdout);
  const cmp = await tsemu(['img', 'compare', url, theirs]);
  assert.equal(cmp.code, 0, cmp.stdout + cmp.stderr);
});

test('a local qcow2 whose backing file is a URL reads it through the http protocol', async () => {
  const s = await serve();
  const top = path.join(dir, 'url-backed.qcow2');
  await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', '-u', '-b', `${s.base}/base.qcow2`, '-F', 'qcow2', top, '4M']), 'create');
  const r = await tsemu(['img', 'compare', top, path.join(dir, 'base.qcow2')]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.ok(s.requests.some((q) => q.method === 'GET' && q.path === '/base.qcow2'));
  const chain = await mustRun(tsemu(['img', 'info', '--backing-chain', '--output=json', top]), 'tsemu info --backing-chain');
  assert.equal(chain.stdout, (await mustRun(qemuImg(['info', '--backing-chain', '--output=json', top]), 'qemu-img info')).stdout);
});

test('readahead: sequential small reads cost few range requests, and each is at least the readahead size', async () => {
  const s = await serve();
  const img = await openImage(json({ driver: 'raw', 'file.driver': 'http', 'file.url': `${s.base}/base.qcow2`, 'file.readahead': '128k' }), { readOnly: true });
  try {
    const buf = new Uint8Array(4096);
    for (let off = 0; off < 512 * 1024; off += buf.length) await img.read(off, buf);
  } finally {
    await closeImage(img);
  }
  const gets = s.requests.filter((r) => r.method === 'GET');
  assert.equal(gets.length, 4, gets.map((g) => g.headers.range).join(' '));
  assert.equal(gets[1]!.headers.range, 'bytes=131072-262143');
});

test('the readahead cache serves reads inside a fetch still on its way, without a second request', async () => {
  const fetched: string[] = [];
  const cache = new ReadaheadCache(1 << 20, 65536, async (offset, buf) => {
    fetched.push(`${offset}+${buf.length}`);
    await new Promise((r) => setTimeout(r, 10));
    buf.fill(offset >> 16);
  });
  const reads = [0, 4096, 60000, 65536, 70000].map(async (off) => {
    const b = new Uint8Array(8192);
    await cache.read(off, b);
    return b;
  });
  const out = await Promise.all(reads);
  assert.deepEqual(fetched, ['0+65536', '65536+65536']);
  assert.equal(out[2]![5535], 0);
  assert.equal(out[2]![5536], 1, 'a read across the chunk border takes both chunks');
});

test('a server without range support is a clear error (QEMU\'s words), exit 1', async () => {
  const s = await serve({ ranges: false });
  const url = `${s.base}/base.qcow2`;
  const r = await tsemu(['img', 'info', url]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Server does not support 'range' \(byte ranges\)\./);
  const q = await qemuImg(['info', url]);
  assert.match(q.stderr, /Server does not support 'range' \(byte ranges\)\./);
  const c = await tsemu(['img', 'convert', '-O', 'raw', url, path.join(dir, 'norange.raw')]);
  assert.equal(c.code, 1);
  assert.match(c.stderr, /range/);
});

test('a server that cuts connections half way: retries make convert succeed and compare clean', async () => {
  const s = await serve({ dropEvery: 3 });
  const url = json({ 'file.driver': 'http', 'file.url': `${s.base}/overlay.qcow2`, 'file.readahead': '64k' });
  const out = path.join(dir, 'flaky.raw');
  await mustRun(tsemu(['img', 'convert', '-O', 'raw', url, out]), 'tsemu convert');
  assert.ok(s.drops >= 2, `the server cut ${s.drops} answers`);
  await mustRun(qemuImg(['compare', '-f', 'raw', '-F', 'qcow2', out, path.join(dir, 'overlay.qcow2')]), 'qemu-img compare');
  const cmp = await tsemu(['img', 'compare', url, path.join(dir, 'overlay.qcow2')]);
  assert.equal(cmp.code, 0, cmp.stdout + cmp.stderr);
});

test('a server that leaves requests unanswered: the timeout ends them and the retries make convert succeed', async () => {
  const s = await serve({ stallEvery: 4 });
  const url = json({ 'file.driver': 'http', 'file.url': `${s.base}/base.qcow2`, 'file.timeout': 1 });
  const out = path.join(dir, 'stalled.raw');
  await mustRun(tsemu(['img', 'convert', '-O', 'raw', url, out]), 'tsemu convert');
  assert.ok(s.drops >= 1, `the server left ${s.drops} requests unanswered`);
  await mustRun(qemuImg(['compare', '-f', 'raw', '-F', 'qcow2', out, path.join(dir, 'base.qcow2')]), 'qemu-img compare');
});

test('a read that keeps failing ends with an error naming the URL and the offset', async () => {
  const s = await serve({ failGets: true });
  const r = await tsemu(['img', 'convert', '-O', 'raw', `${s.base}/base.qcow2`, path.join(dir, 'failing.raw')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`${s.base}/base\\.qcow2.*offset 0.*HTTP 503.*after 5 attempts`));
});

test('https: a self-signed certificate fails verification; sslverify=off reads it', async () => {
  const s = await serve({ tls });
  const url = `${s.base}/base.qcow2`;
  const r = await tsemu(['img', 'info', url]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /certificate verification failed: self[- ]signed certificate.*sslverify=off/);
  const off = json({ 'file.driver': 'https', 'file.url': url, 'file.sslverify': 'off' });
  const ours = await mustRun(tsemu(['img', 'info', '--output=json', off]), 'tsemu info sslverify=off');
  const theirs = await mustRun(qemuImg(['info', '--output=json', off]), 'qemu-img info sslverify=off');
  const strip = (t: string) => ({ ...JSON.parse(t), filename: undefined });
  assert.deepEqual(strip(ours.stdout), strip(theirs.stdout));
  const out = path.join(dir, 'tls.raw');
  await mustRun(tsemu(['img', 'convert', '-O', 'raw', off, out]), 'tsemu convert over https');
  await mustRun(qemuImg(['compare', '-f', 'raw', out, path.join(dir, 'base.qcow2')]), 'qemu-img compare');
});

test('cookie, username and password-secret (from --object secret,file=) reach the server', async () => {
  const auth = `Basic ${Buffer.from('alice:s3cret').toString('base64')}`;
  const s = await serve({ authorization: auth });
  const url = `${s.base}/base.qcow2`;
  const denied = await tsemu(['img', 'info', url]);
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /HTTP 401/);
  const secretFile = path.join(dir, 'password');
  await writeFile(secretFile, 's3cret');
  const name = json({ driver: 'qcow2', file: { driver: 'http', url, cookie: 'session=42', username: 'alice', 'password-secret': 'pw' } });
  await mustRun(tsemu(['img', 'info', '--object', `secret,id=pw,file=${secretFile}`, name]), 'tsemu info with credentials');
  const seen = s.requests.filter((r) => r.headers.authorization === auth);
  assert.ok(seen.length > 0 && seen.every((r) => r.headers.cookie === 'session=42'));
  const b64 = Buffer.from('s3cret').toString('base64');
  await mustRun(tsemu(['img', 'compare', '--object', `secret,id=pw,data=${b64},format=base64`, name, path.join(dir, 'base.qcow2')]), 'compare');
  const missing = await tsemu(['img', 'info', name]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /No secret with id 'pw'/);
  const userinfo = await mustRun(tsemu(['img', 'info', url.replace('//', '//alice:s3cret@')]), 'credentials in the URL');
  assert.match(userinfo.stdout, /file format: qcow2/);
});

test('read-only: creating, writing and resizing over HTTP are refused naming the driver', async () => {
  const s = await serve();
  const url = `${s.base}/base.qcow2`;
  const create = await tsemu(['img', 'convert', '-O', 'raw', path.join(dir, 'base.qcow2'), `${s.base}/new.raw`]);
  assert.equal(create.code, 1);
  assert.match(create.stderr, /Protocol driver 'http' does not support image creation/);
  const resize = await tsemu(['img', 'resize', url, '8M']);
  assert.equal(resize.code, 1);
  assert.match(resize.stderr, /http driver does not support writes/);
});

test('json: names: options parse and errors name what is wrong', async () => {
  const url = 'https://127.0.0.1:1/d.qcow2';
  const o = parseHttpOptions(json({ driver: 'https', url, readahead: '1M', timeout: 30, sslverify: false, cookie: 'a=b' }));
  assert.deepEqual([o.driver, o.url.href, o.readahead, o.timeoutMs, o.sslverify, o.cookie], ['https', url, 1 << 20, 30000, false, 'a=b']);
  const plain = parseHttpOptions('http://bob:pw@127.0.0.1/x');
  assert.deepEqual([plain.readahead, plain.timeoutMs, plain.sslverify, plain.username, plain.password, plain.url.href],
    [262144, 5000, true, 'bob', 'pw', 'http://127.0.0.1/x']);
  defineSecret('h7-test', 'value');
  try {
    assert.equal(parseHttpOptions(json({ driver: 'http', url: 'http://h/x', 'password-secret': 'h7-test' })).password, 'value');
  } finally {
    removeSecret('h7-test');
  }
  const bad: [object, RegExp][] = [
    [{ driver: 'https', url, foo: 1 }, /Block protocol 'https' doesn't support the option 'foo'/],
    [{ driver: 'https', url: 'http://h/x' }, /cannot handle the URL 'http:\/\/h\/x'/],
    [{ driver: 'https', url, readahead: 1000 }, /readahead size 1000 is not a multiple of 512/],
    [{ driver: 'https', url, timeout: 10001 }, /timeout 10001 is negative or too large/],
    [{ driver: 'https', url, sslverify: 'maybe' }, /'sslverify' expects 'on' or 'off'/],
    [{ driver: 'https', url, cookie: 'a', 'cookie-secret': 'b' }, /cookie and cookie-secret/],
    [{ driver: 'https', url, 'password-secret': 'nope' }, /No secret with id 'nope'/],
    [{ driver: 'https' }, /requires a 'url' option/],
  ];
  for (const [opts, re] of bad) assert.throws(() => parseHttpOptions(json(opts)), re);

  const spec = splitJsonFilename(json({ driver: 'qcow2', file: { driver: 'https', url, sslverify: 'off' }, backing: null }));
  assert.deepEqual([spec.format, spec.location, spec.backing, spec.unknown], ['qcow2', url, false, []]);
  assert.equal(spec.protocolName, json({ driver: 'https', url, sslverify: 'off' }));
  assert.equal(splitJsonFilename(json({ 'file.filename': 'a.qcow2' })).protocolName, 'a.qcow2');
  assert.equal(splitJsonFilename(json({ 'file.url': url, 'file.timeout': 9 })).protocolName, json({ driver: 'https', url, timeout: 9 }));
  assert.throws(() => splitJsonFilename('json:{"driver":'), /Could not parse the JSON options/);
  assert.throws(() => splitJsonFilename('json:[1]'), /Invalid JSON object given/);
  assert.throws(() => splitJsonFilename(json({ 'file.driver': 'gopher', 'file.url': 'x' })), /Unknown driver 'gopher'/);
  assert.throws(() => splitJsonFilename(json({ 'file.driver': 'file', 'file.filename': 'a', 'file.x': 1 })), /'file' doesn't support the option 'x'/);

  const r = await tsemu(['img', 'info', json({ 'file.filename': path.join(dir, 'base.qcow2'), foo: 1 })]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Block format 'qcow2' does not support the option 'foo'/);
  const local = await mustRun(tsemu(['img', 'info', json({ driver: 'qcow2', file: { driver: 'file', filename: path.join(dir, 'overlay.qcow2') } })]), 'json: local file');
  assert.match(local.stdout, /backing file: base\.qcow2/);
  assert.equal(splitJsonFilename(json({ driver: 'file', filename: 'a.raw' })).protocolName, 'a.raw');
  const create = await tsemu(['img', 'create', '-f', 'raw', json({ 'file.driver': 'file', 'file.filename': 'made.raw' }), '1M'], { cwd: dir });
  assert.equal(create.code, 1);
  assert.match(create.stderr, /Unknown protocol 'json'/);
  assert.deepEqual((await readdir(dir)).filter((f) => f.includes('json') || f.includes('made')), []);
  const obj = await tsemu(['img', 'info', '--object', 'secret,id=x', path.join(dir, 'base.qcow2')]);
  assert.equal(obj.code, 1);
  assert.match(obj.stderr, /Either 'file' or 'data' must be provided/);
});

test('--object secret: data (commas doubled), file, base64, qom-type=; bad definitions name what is wrong', () => {
  defineObjects(['secret,id=h7-a,data=x,,y', 'qom-type=secret,id=h7-b,data=eHk=,format=base64']);
  try {
    assert.deepEqual([lookupSecret('h7-a'), lookupSecret('h7-b')], ['x,y', 'xy']);
    const bad: [string, RegExp][] = [
      ['foo,id=c', /Parameter 'qom-type' does not accept value 'foo'/],
      ['secret,id=c,data=1,bar=2', /Property 'secret.bar' not found/],
      ['secret,id=h7-a,data=1', /duplicate property 'h7-a'/],
      ['secret,data=1', /Parameter 'id' is missing/],
      ['secret,id=c,data=1,file=/x', /'file' and 'data' are mutually exclusive/],
      ['secret,id=c,file=/nonexistent/secret', /Unable to read \/nonexistent\/secret: No such file or directory/],
      ['secret,id=c,data=1,keyid=k', /encrypted secrets \(keyid=\) are not supported/],
      ['secret,id=c,data=@@,format=base64', /not valid base64/],
    ];
    for (const [def, re] of bad) assert.throws(() => defineObjects([def]), re, def);
  } finally {
    removeSecret('h7-a');
    removeSecret('h7-b');
  }
});
