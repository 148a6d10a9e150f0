/**
 * ICMP echo to hosts other than the router, through the unprivileged ICMP socket.
 * The work runs in icmp-echo-guest.ts inside a fresh network namespace (unshare -n,
 * root), where ping_group_range can be set without touching the host and the pinged
 * address (198.51.100.1) exists only on the namespace's loopback.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { requirePeer } from '../helpers/peers.js';

const LOCAL_ONLY = 0xc6336401;

test('echo to a NAT address goes through the ICMP socket; without one it is dropped with one warning', async () => {
  requirePeer('unshare');
  requirePeer('ip');
  requirePeer('sysctl');
  const helper = fileURLToPath(new URL('./icmp-echo-guest.ts', import.meta.url));
  const { stdout } = await promisify(execFile)('unshare', ['-n', '--', process.execPath, '--import', 'tsx', helper]);
  const r = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, { src: number; id: number; seq: number; data: string; checksumOk: boolean }[]> & { warnings: string[] };
  assert.deepEqual(r.allowed.map((x) => x.seq).sort(), [1, 2, 3], 'three replies');
  for (const reply of r.allowed) {
    assert.equal(reply.src, LOCAL_ONLY, 'from the address the guest pinged');
    assert.equal(reply.id, 0xbeef, 'with the guest\'s identifier restored');
    assert.equal(reply.data, '@ABCDEFGHIJKLMNO');
    assert.ok(reply.checksumOk);
  }
  assert.deepEqual(r.denied, [], 'no ICMP socket: dropped');
  assert.equal(r.warnings.filter((w) => /no ICMP socket/.test(w)).length, 1, 'said once');
  assert.deepEqual(r.restricted, [], 'restrict=on: dropped');
  assert.deepEqual(r.loopback, [], '127.0.0.1 is not reachable as itself');
});
