/**
 * ICMPv6 echo to hosts other than the router, through the unprivileged ICMPv6
 * socket. The work runs in user-ipv6-echo-guest.ts inside a fresh network namespace
 * (unshare -n, root), where ping_group_range can be set without touching the host
 * and the pinged address (2001:db8::1) exists only on the namespace's loopback.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { requirePeer } from '../helpers/peers.js';

test('ICMPv6 echo to a NAT address goes through the ICMPv6 socket; without one it is dropped with one warning', async () => {
  for (const peer of ['unshare', 'ip', 'sysctl']) requirePeer(peer);
  const helper = fileURLToPath(new URL('./user-ipv6-echo-guest.ts', import.meta.url));
  const { stdout } = await promisify(execFile)('unshare', ['-n', '--', process.execPath, '--import', 'tsx', helper]);
  const r = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown[]>;
  const expected = [1, 2, 3].map((seq) => ({ src: '2001:db8::1', id: 0xbeef, seq, data: 'ping six', checksumOk: true }));
  assert.deepEqual(r.allowed, expected, 'three replies from the address pinged, the guest\'s identifier restored');
  assert.deepEqual([r.denied, r.restricted, r.loopback], [[], [], []], 'dropped without a socket, with restrict=on, to ::1');
  assert.equal(r.warnings!.filter((w) => /no ICMPv6 socket/.test(String(w))).length, 1, 'the missing socket is said once');
});
