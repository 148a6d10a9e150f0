/**
 * NODE_EXTRA_CA_CERTS through the tsemu launcher: an HTTPS server on 127.0.0.1
 * whose certificate authority (made by openssl) is named only by the file in
 * NODE_EXTRA_CA_CERTS is trusted whether tsemu runs as a program (bin/tsemu.js's
 * shell step keeps the file from Node and HTTPS adds it on first use) or as
 * `node bin/tsemu.js` (Node loads it at start-up); without the variable it is not;
 * an unreadable file is a warning, as with Node, and the default store stays
 * (run as a program, only a command that makes an HTTPS connection reads it).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ROOT, mustRun, requirePeer, runProgram, scratchDir, tsemu, type RunResult } from '../helpers/peers.js';
import { startRangeServer, type RangeServer } from './range-server.js';

const BIN = path.join(ROOT, 'bin/tsemu.js');

let dir = '';
let cleanup = async () => {};
let server: RangeServer | undefined;
let url = '';
let caFile = '';

/** Runs `command args` with NODE_EXTRA_CA_CERTS set to `caCerts` (or unset when undefined). */
function runWithCaCerts(caCerts: string | undefined, command: string, args: string[]): Promise<RunResult> {
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  if (caCerts !== undefined) env.NODE_EXTRA_CA_CERTS = caCerts;
  return new Promise((resolve) => {
    execFile(command, args, { env }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? -1) : 0, stdout, stderr });
    });
  });
}

const LAUNCHERS: [string, string, string[]][] = [
  ['as a program', BIN, []],
  ['as node bin/tsemu.js', process.execPath, [BIN]],
];

before(async () => {
  requirePeer('openssl');
  ({ dir, cleanup } = await scratchDir());
  const file = (name: string) => path.join(dir, name);
  const openssl = (args: string[], what: string) => mustRun(runProgram('openssl', args, { cwd: dir }), what);
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(['req', '-x509', ...ecKey, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=tsemu test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign'], 'openssl: CA');
  await openssl(['req', ...ecKey, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1'], 'openssl: request');
  await writeFile(file('server.ext'), 'subjectAltName=IP:127.0.0.1\n');
  await openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'server.pem', '-days', '1', '-extfile', 'server.ext'], 'openssl: server certificate');
  caFile = file('ca.pem');
  await mustRun(tsemu(['img', 'create', '-q', '-f', 'qcow2', file('disk.qcow2'), '8M']), 'tsemu img create');
  server = await startRangeServer({
    root: dir,
    tls: { key: await readFile(file('server.key'), 'utf8'), cert: await readFile(file('server.pem'), 'utf8') },
  });
  url = `${server.base}/disk.qcow2`;
});

after(async () => {
  await server?.close();
  await cleanup();
});

test('https trusts a certificate authority named only by NODE_EXTRA_CA_CERTS, however tsemu is started', async () => {
  for (const [how, command, args] of LAUNCHERS) {
    const r = await runWithCaCerts(caFile, command, [...args, 'img', 'info', '--output=json', url]);
    assert.equal(r.code, 0, `${how}: ${r.stderr}`);
    assert.equal(JSON.parse(r.stdout)['virtual-size'], 8 << 20, how);
    assert.equal(r.stderr, '', how);
  }
});

test('without NODE_EXTRA_CA_CERTS the same server fails verification', async () => {
  const r = await runWithCaCerts(undefined, BIN, ['img', 'info', url]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /certificate verification failed/);
});

test('an unreadable NODE_EXTRA_CA_CERTS file is a warning naming it, and the default store stays', async () => {
  const missing = path.join(dir, 'no-such-ca.pem');
  for (const [how, command, args] of LAUNCHERS) {
    const r = await runWithCaCerts(missing, command, [...args, 'img', 'info', url]);
    assert.equal(r.code, 1, how);
    assert.ok(r.stderr.includes(missing), `${how}: ${r.stderr}`);
    assert.match(r.stderr, /certificate verification failed/, how);
  }
});

test('a command that makes no HTTPS connection, run as a program, does not read the file', async () => {
  const r = await runWithCaCerts(path.join(dir, 'no-such-ca.pem'), BIN, ['img', 'info', path.join(dir, 'disk.qcow2')]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
});
