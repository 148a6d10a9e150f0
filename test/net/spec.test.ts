import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseNetdevSpec, parseHostForward } from '../../src/net/spec.js';
import { formatIpv4 } from '../../src/net/address.js';
import { Hub } from '../../src/net/hub.js';
import type { FrameBackend, FrameHandler } from '../../src/net/backend.js';

test('user defaults follow QEMU (10.0.2.0/24, host .2, dns .3, dhcpstart .15)', () => {
  const spec = parseNetdevSpec('user');
  assert.equal(spec.type, 'user');
  if (spec.type !== 'user') return;
  assert.deepEqual([spec.net, spec.host, spec.dns, spec.dhcpStart].map(formatIpv4), ['10.0.2.0', '10.0.2.2', '10.0.2.3', '10.0.2.15']);
  assert.equal(spec.prefix, 24);
  assert.equal(spec.restrict, false);
});

test('user options: net with prefix or mask, restrict, repeated hostfwd, ,, escapes', () => {
  const spec = parseNetdevSpec('user,id=n0,net=192.168.76.0/255.255.255.0,dhcpstart=192.168.76.9,restrict=on,' +
    'hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp::5353-10.0.2.20:53,domainname=a,,b');
  assert.equal(spec.type, 'user');
  if (spec.type !== 'user') return;
  assert.equal(formatIpv4(spec.host), '192.168.76.2');
  assert.equal(formatIpv4(spec.dhcpStart), '192.168.76.9');
  assert.equal(spec.restrict, true);
  assert.equal(spec.domainname, 'a,b');
  assert.equal(spec.hostfwd.length, 2);
  assert.deepEqual(spec.hostfwd[0], { proto: 'tcp', hostAddr: '127.0.0.1', hostPort: 2222, guestAddr: null, guestPort: 22 });
  assert.equal(spec.hostfwd[1]!.proto, 'udp');
  assert.equal(formatIpv4(spec.hostfwd[1]!.guestAddr!), '10.0.2.20');
  assert.equal(parseHostForward(':8080-:80').proto, 'tcp');
  const boot = parseNetdevSpec('user,tftp=/srv/tftp,bootfile=pxelinux.0');
  assert.ok(boot.type === 'user' && boot.tftp === '/srv/tftp' && boot.bootfile === 'pxelinux.0');
  const fwd = parseNetdevSpec('user,guestfwd=tcp:10.0.2.100:1234-cmd:nc host 80,,81,guestfwd=10.0.2.101:22-tcp:127.0.0.1:2222');
  assert.ok(fwd.type === 'user');
  assert.deepEqual(fwd.guestfwd.map((g) => g.target), [{ kind: 'cmd', command: 'nc host 80,81' }, { kind: 'tcp', host: '127.0.0.1', port: 2222 }]);
});

test('tap options: ifname, script=no, downscript=no', () => {
  assert.deepEqual(parseNetdevSpec('tap,ifname=tsemu0,script=no,downscript=no'), { type: 'tap', ifname: 'tsemu0' });
});

test('socket, stream, dgram and bridge spellings', () => {
  assert.deepEqual(parseNetdevSpec('bridge,br=br0'), { type: 'bridge', id: undefined, br: 'br0', ifname: undefined });
  assert.deepEqual(parseNetdevSpec('socket,listen=:1234'), { type: 'stream', id: undefined, server: true, address: { kind: 'inet', host: '', port: 1234 } });
  assert.deepEqual(parseNetdevSpec('socket,connect=127.0.0.1:1234'), { type: 'stream', id: undefined, server: false, address: { kind: 'inet', host: '127.0.0.1', port: 1234 } });
  assert.deepEqual(parseNetdevSpec('stream,server=off,addr.type=unix,addr.path=/tmp/s'), { type: 'stream', id: undefined, server: false, address: { kind: 'unix', path: '/tmp/s' } });
  assert.deepEqual(parseNetdevSpec('socket,udp=127.0.0.1:2,localaddr=:1'), { type: 'dgram', id: undefined, local: { host: '', port: 1 }, remote: { host: '127.0.0.1', port: 2 } });
  assert.deepEqual(parseNetdevSpec('dgram,local.host=127.0.0.1,local.port=1,remote.host=127.0.0.1,remote.port=2').type, 'dgram');
});

test('bad specs are clear errors', () => {
  const bad: [string, RegExp][] = [
    ['vde', /not a network backend/],
    ['user,bogus=1', /unknown option 'bogus'/],
    ['user,restrict=maybe', /restrict: 'maybe' is not on or off/],
    ['user,net=10.0.2.0/33', /prefix/],
    ['user,net=300.1.1.1', /not an IPv4 address/],
    ['user,dhcpstart=10.0.3.1', /outside the network/],
    ['user,hostfwd=tcp:1.2.3.4:99999-:22', /host port '99999'/],
    ['user,hostfwd=tcp::22', /is not \[tcp\|udp\]/],
    ['user,hostfwd=sctp::1-:2', /is not \[tcp\|udp\]/],
    ['tap,script=/etc/qemu-ifup', /runs no setup scripts/],
    ['user,guestfwd=tcp:10.0.2.100:1234', /is not \[tcp:\]server:port-cmd/],
    ['user,guestfwd=tcp:10.0.2.2:1234-cmd:true', /other than the host and DNS/],
    ['user,guestfwd=tcp:192.168.0.1:1234-cmd:true', /must be an address of the network/],
    ['tap,ifname=much-too-long-name0', /not an interface name/],
    ['tap,vhost=on', /unknown option 'vhost'/],
    ['socket,listen=:1,connect=a:2', /exactly one of/],
    ['bridge', /br= names the bridge/],
    ['bridge,br=br0,helper=/usr/lib/qemu/qemu-bridge-helper', /runs no helper/],
    ['socket,connect=:2', /is not host:port/],
    ['socket,udp=a:1', /localaddr= goes with udp= or mcast=/],
    ['stream,addr.type=inet', /needs addr.port=/],
    ['stream,addr.type=vsock,addr.port=1', /not inet or unix/],
    ['dgram,local.port=1', /remote.port= is missing/],
  ];
  for (const [text, message] of bad) assert.throws(() => parseNetdevSpec(text), message, text);
});

class Port implements FrameBackend {
  readonly received: Uint8Array[] = [];
  handler: FrameHandler = () => {};
  closed = false;
  constructor(readonly name: string) {}
  send(frame: Uint8Array): void { this.received.push(frame); }
  onFrame(handler: FrameHandler): void { this.handler = handler; }
  async close(): Promise<void> { this.closed = true; }
}

test('a hub repeats each frame to every other port, never back to its sender', async () => {
  const ports = [new Port('a'), new Port('b'), new Port('c')];
  const hub = new Hub(ports);
  const frame = new Uint8Array(60);
  ports[1]!.handler(frame);
  assert.deepEqual(ports.map((p) => p.received.length), [1, 0, 1]);
  await hub.close();
  assert.ok(ports.every((p) => p.closed));
});
