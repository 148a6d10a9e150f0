/**
 * The bundled RISC-V guest on `--net user`: its virtio-net card gets the
 * first DHCP lease (10.0.2.15, router 10.0.2.2, DNS 10.0.2.3), the user
 * stack's DNS answers a name from the host's resolver (localhost, from
 * /etc/hosts: no traffic leaves the host; its 127.0.0.1 comes back as 10.0.2.2), the guest downloads a file from
 * an HTTP server on the host's loopback through 10.0.2.2, and the host
 * downloads a file from busybox httpd in the guest through hostfwd. Both
 * transfers are checked by SHA-256. Two cards (--net beside --netdev with
 * --device virtio-net,mac=) show up with their addresses. Commands are typed on the console's
 * busybox shell; outputs are matched by patterns their echo cannot match.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { BOOT_MARKER, BUNDLED_GUEST, requireGuest } from '../guests/riscv-guests.js';
import { GuestConsole, freePort, serveBytes } from './guest-console.js';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
/** The DHCP hook udhcpc runs: configures the lease and prints it. */
const DHCP_HOOK = String.raw`mkdir -p /etc; printf '#!/bin/sh\n[ "$1" = bound ] || exit 0\nip addr add $ip/24 dev $interface\nip route add default via $router\necho nameserver $dns >/etc/resolv.conf\necho LEASE $ip $router $dns\n' >/tmp/dhcp.sh; chmod +x /tmp/dhcp.sh`;

test('--net user: DHCP, DNS and HTTP both ways for the bundled guest', async () => {
  requireGuest(BUNDLED_GUEST);
  const payload = randomBytes(192 * 1024);
  const { server, port: hostPort } = await serveBytes(payload);
  const fwdPort = await freePort();
  const guest = GuestConsole.start([
    '-m', '128M', '--kernel', BUNDLED_GUEST.kernel, '--initrd', BUNDLED_GUEST.initrd, '--append', 'console=ttyS0',
    '--net', `user,hostfwd=tcp:127.0.0.1:${fwdPort}-:8080`,
  ]);
  try {
    await guest.waitFor(new RegExp(`${BOOT_MARKER}[^\\n]*\\n`), 300);
    await guest.waitFor(/~ # /, 60);
    guest.type(DHCP_HOOK);
    guest.type('ip link set lo up; ip link set eth0 up; udhcpc -i eth0 -q -n -s /tmp/dhcp.sh');
    const lease = await guest.waitFor(/LEASE ([\d.]+) ([\d.]+) ([\d.]+)\r?\n/, 120);
    assert.deepEqual(lease.slice(1), ['10.0.2.15', '10.0.2.2', '10.0.2.3']);

    guest.type('nslookup localhost 10.0.2.3 | grep -A1 "^Name:" | sed -n "s/^Address[: 0-9]*[: ]\\([0-9.]*\\)$/RESOLVED-\\1/p"');
    // The host's loopback answer becomes the address where the guest reaches the host's loopback.
    assert.equal((await guest.waitFor(/RESOLVED-([0-9.]+)\r?\n/, 120))[1], '10.0.2.2');

    guest.type(`wget -q -O - http://10.0.2.2:${hostPort}/payload | sha256sum | sed 's/^/GOT-/'`);
    assert.equal((await guest.waitFor(/GOT-([0-9a-f]{64})/, 300))[1], sha256(payload));

    guest.type('mkdir -p /tmp/www; dd if=/dev/urandom of=/tmp/www/blob bs=1024 count=160 2>/dev/null; httpd -p 8080 -h /tmp/www; sha256sum /tmp/www/blob | sed "s/^/HAS-/"');
    const has = (await guest.waitFor(/HAS-([0-9a-f]{64})/, 120))[1];
    const res = await fetch(`http://127.0.0.1:${fwdPort}/blob`);
    assert.equal(res.status, 200);
    const got = new Uint8Array(await res.arrayBuffer());
    assert.equal(got.length, 160 * 1024);
    assert.equal(sha256(got), has);
    guest.type('poweroff -f');
    assert.equal(await guest.stop(120), 0, guest.tail());
  } finally {
    await guest.stop();
    server.close();
  }
});

test('several cards: --net and --netdev/--device give the guest eth0 and eth1 with their MAC addresses', async () => {
  requireGuest(BUNDLED_GUEST);
  const guest = GuestConsole.start([
    '-m', '128M', '--kernel', BUNDLED_GUEST.kernel, '--initrd', BUNDLED_GUEST.initrd, '--append', 'console=ttyS0',
    '--netdev', 'user,id=n1,restrict=on', '--device', 'virtio-net,netdev=n1,mac=52:54:00:aa:bb:cc', '--net', 'user,restrict=on',
  ]);
  try {
    await guest.waitFor(new RegExp(`${BOOT_MARKER}[^\\n]*\\n`), 300);
    await guest.waitFor(/~ # /, 60);
    guest.type('for n in /sys/class/net/eth*; do echo "CARD-${n##*/}=$(cat $n/address)"; done');
    const macs: string[] = [];
    for (let i = 0; i < 2; i++) macs.push((await guest.waitFor(/CARD-eth\d=([0-9a-f:]{17})/, 60))[1]!);
    assert.deepEqual(macs.sort(), ['52:54:00:12:34:56', '52:54:00:aa:bb:cc']);
    guest.type('poweroff -f');
    assert.equal(await guest.stop(120), 0, guest.tail());
  } finally {
    await guest.stop();
  }
});
