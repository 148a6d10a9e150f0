/**
 * The bridge backend: tsemu's tap joins a Linux bridge the test creates in the host
 * namespace; a veth pair connects the bridge to a namespace whose programs get the
 * user network through it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { openBackend } from '../../src/net/create.js';
import { Hub } from '../../src/net/hub.js';
import { parseNetdevSpec, type UserNetdev } from '../../src/net/spec.js';
import { UserStack } from '../../src/net/user/stack.js';
import { runProgram } from '../helpers/peers.js';
import { GuestNamespace } from './netns.js';

async function ip(...args: string[]): Promise<void> {
  const r = await runProgram('ip', args);
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
}

test('bridge,br=: a namespace on the bridge gets a lease and reaches the host', async () => {
  const id = randomBytes(3).toString('hex');
  const br = `tsemubr${id}`;
  const http = createServer((_req, res) => res.end('through the bridge\n'));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  let hub: Hub | undefined;
  let ns: GuestNamespace | undefined;
  try {
    await ip('link', 'add', br, 'type', 'bridge');
    await ip('link', 'set', br, 'up');
    await ip('link', 'add', `tsv${id}a`, 'type', 'veth', 'peer', 'name', `tsv${id}b`);
    await ip('link', 'set', `tsv${id}a`, 'master', br, 'up');
    hub = new Hub([await UserStack.create(parseNetdevSpec('user') as UserNetdev), await openBackend(parseNetdevSpec(`bridge,br=${br}`))]);
    ns = await GuestNamespace.adopt(`tsv${id}b`);
    assert.match((await ns.dhcp()).stdout, /ip=10\.0\.2\.15/);
    const r = await ns.run(['busybox', 'wget', '-q', '-O', '-', `http://10.0.2.2:${(http.address() as AddressInfo).port}/`]);
    assert.equal(r.stdout, 'through the bridge\n');
  } finally {
    await ns?.destroy();
    await hub?.close();
    await runProgram('ip', ['link', 'del', br]);
    http.close();
  }
});

test('bridge to a bridge that does not exist: a clear error, no tap left behind', async () => {
  await assert.rejects(openBackend(parseNetdevSpec('bridge,br=tsemunobr0,ifname=tsemunotap0')), /bridge: cannot attach tsemunotap0 to 'tsemunobr0'/);
  const r = await runProgram('ip', ['link', 'show', 'tsemunotap0']);
  assert.notEqual(r.code, 0);
});
