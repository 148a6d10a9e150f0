/**
 * `tsemu net connect` as a user runs it: the built CLI joins a user network and a tap,
 * a namespace adopts the tap and its programs use the network; SIGTERM ends the
 * command cleanly. Without CAP_NET_ADMIN the tap backend says what is missing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { requirePeer, ROOT, runProgram } from '../helpers/peers.js';
import { GuestNamespace } from './netns.js';

const TSEMU = path.join(ROOT, 'bin/tsemu.js');

test('net connect user tap: a namespace holding the tap gets a lease and reaches the host; SIGTERM ends it', async () => {
  const server = createServer((_req, res) => res.end('via tsemu net connect\n'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const ifname = GuestNamespace.interfaceName();
  const child = spawn(process.execPath, [TSEMU, 'net', 'connect', 'user', `tap,ifname=${ifname},script=no,downscript=no`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let ns: GuestNamespace | undefined;
  try {
    // Wait (generously) for the marker line that says the backends are joined.
    const deadline = Date.now() + 60_000;
    while (!stderr.includes('tsemu: joined')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`net connect did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    ns = await GuestNamespace.adopt(ifname);
    assert.match((await ns.dhcp()).stdout, /ip=10\.0\.2\.15/);
    const r = await ns.run(['busybox', 'wget', '-q', '-O', '-', `http://10.0.2.2:${port}/`]);
    assert.equal(r.stdout, 'via tsemu net connect\n');
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0, stderr);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await ns?.destroy();
    server.close();
  }
});

test('net connect with a tap but no CAP_NET_ADMIN fails with an error that names the capability', async () => {
  requirePeer('setpriv');
  const r = await runProgram('setpriv', ['--bounding-set=-net_admin', '--inh-caps=-net_admin', process.execPath, TSEMU, 'net', 'connect', 'user', 'tap']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /tap: .*needs CAP_NET_ADMIN/);
});

test('net connect rejects bad specifications and a single backend', async () => {
  const one = await runProgram(process.execPath, [TSEMU, 'net', 'connect', 'user']);
  assert.equal(one.code, 1);
  assert.match(one.stderr, /at least two backends/);
  const bad = await runProgram(process.execPath, [TSEMU, 'net', 'connect', 'user,hostfwd=tcp::x-:22', 'tap']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /hostfwd/);
});
